"""The control centre's HTTP and WebSocket API and the dashboard it serves.

``create_app(centre, tokens)`` builds the application over any object implementing
:class:`~gridmesh.api.ports.Centre`; ``Hub`` is the WebSocket fan-out.
"""

from __future__ import annotations

from gridmesh.api.app import create_app
from gridmesh.api.ports import (
    AlarmView,
    Centre,
    CentreError,
    CommandRefused,
    CommandView,
    DeadLetterView,
    DeviceView,
    EventView,
    NetworkView,
    NotFound,
    NotReady,
    SeriesView,
    StateView,
)
from gridmesh.api.stream import Hub

__all__ = [
    "AlarmView",
    "Centre",
    "CentreError",
    "CommandRefused",
    "CommandView",
    "DeadLetterView",
    "DeviceView",
    "EventView",
    "Hub",
    "NetworkView",
    "NotFound",
    "NotReady",
    "SeriesView",
    "StateView",
    "create_app",
]
