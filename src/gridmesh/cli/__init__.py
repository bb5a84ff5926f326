"""The ``gridmesh`` command line."""
