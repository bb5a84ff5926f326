"""The stateful, threaded wiring of the live platform: bus, ingest, historian, estimator loop, alarms."""
