"""OCPP 2.0.1 and 1.6: a central system for EV chargers bound to grid buses, and simulated chargers.

Built on the mobilityhouse ``ocpp`` library over ``websockets``. See ``docs/ocpp.md``.
"""

from gridmesh.adapters.ocpp.auth import (
    PasswordStore,
    SecurityProfile,
    client_tls_context,
    load_charger_secrets,
    provision_passwords,
    server_tls_context,
)
from gridmesh.adapters.ocpp.central import (
    CentralConfig,
    CentralSystem,
    OcppCallError,
    PushOutcome,
    PushReport,
    PushResult,
)
from gridmesh.adapters.ocpp.charge_point import SessionPlan, SimStation, StationConfig
from gridmesh.adapters.ocpp.fleet import Fleet, FleetThread, make_station, sessions_from_ev
from gridmesh.adapters.ocpp.registry import ChargerBinding, ChargerRegistry, registry_from_network
from gridmesh.adapters.ocpp.sink import EventKind, MemorySink, MeterRow, OcppEvent, OcppSink
from gridmesh.adapters.ocpp.state import ChargerState, Transaction

__all__ = [
    "CentralConfig",
    "CentralSystem",
    "ChargerBinding",
    "ChargerRegistry",
    "ChargerState",
    "EventKind",
    "Fleet",
    "FleetThread",
    "MemorySink",
    "MeterRow",
    "OcppCallError",
    "OcppEvent",
    "OcppSink",
    "PasswordStore",
    "PushOutcome",
    "PushReport",
    "PushResult",
    "SecurityProfile",
    "SessionPlan",
    "SimStation",
    "StationConfig",
    "Transaction",
    "client_tls_context",
    "load_charger_secrets",
    "make_station",
    "provision_passwords",
    "registry_from_network",
    "server_tls_context",
    "sessions_from_ev",
]
