"""The historian: every accepted reading, the dead-letter store and the event log, behind one interface."""
