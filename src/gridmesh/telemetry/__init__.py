"""Telemetry: the signed envelope devices publish, the quantities it carries and the device catalogue.

Pure data and encoding; no I/O. The services (ingest, historian) and adapters (MQTT, field simulator)
build on it.
"""
