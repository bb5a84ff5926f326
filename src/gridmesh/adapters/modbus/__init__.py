"""Modbus/SunSpec adapter: inverters and batteries read and controlled through SunSpec models over Modbus TCP.

Register maps come from pysunspec2's model definitions (:mod:`.sunspec_map`), the wire from pymodbus
(:mod:`.client`, :mod:`.simulated_device`); :mod:`.bridge` maps points to gridmesh readings and commands,
and :mod:`.gateway` serves the devices on the gridmesh bus with signed telemetry, commands and acks.
"""

from gridmesh.adapters.modbus.bridge import SunSpecDevice, readings_of
from gridmesh.adapters.modbus.client import (
    NotSunSpec,
    Ratings,
    SetpointRefused,
    SunSpecClient,
    SunSpecDeviceError,
    SunSpecEndpoint,
    SunSpecError,
    SunSpecOffline,
)
from gridmesh.adapters.modbus.gateway import RoundReport, SunSpecGateway
from gridmesh.adapters.modbus.simulated_der import DerKind, DerRating, SimulatedDer
from gridmesh.adapters.modbus.simulated_device import SimulatedSunSpecServer
from gridmesh.adapters.modbus.sunspec_map import SUPPORTED_MODELS, ModelMap, PointMap, SunSpecMapError, model_map

__all__ = [
    "SUPPORTED_MODELS",
    "DerKind",
    "DerRating",
    "ModelMap",
    "NotSunSpec",
    "PointMap",
    "Ratings",
    "RoundReport",
    "SetpointRefused",
    "SimulatedDer",
    "SimulatedSunSpecServer",
    "SunSpecClient",
    "SunSpecDevice",
    "SunSpecDeviceError",
    "SunSpecEndpoint",
    "SunSpecError",
    "SunSpecGateway",
    "SunSpecMapError",
    "SunSpecOffline",
    "model_map",
    "readings_of",
]
