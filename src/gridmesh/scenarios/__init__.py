"""Built-in scenarios shipped with gridmesh (``demo``)."""
