"""Controllers: small single-purpose planners that request device setpoints for a window of steps."""
