"""Readers and writers: YAML scenarios, pandapower networks, SimBench codes."""
