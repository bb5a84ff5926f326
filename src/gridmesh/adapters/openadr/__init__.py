"""OpenADR 2.0b demand response over openleadr: the centre's VTN, one VEN per site, X.509 provisioning,
DR events (operator and peak trigger) and their measured results."""

from gridmesh.adapters.openadr.certificates import (
    CertificateError,
    Credentials,
    OpenAdrPki,
    create_ca,
    fingerprint_of,
    issue_certificate,
    provision_pki,
)
from gridmesh.adapters.openadr.events import DrEvent, DrSignal, EventRefused, check_event, events_for_peaks
from gridmesh.adapters.openadr.results import EventResult, Opt, VenResult
from gridmesh.adapters.openadr.ven import (
    AlwaysOptIn,
    CriticalShareOptOut,
    DrInstruction,
    OptPolicy,
    RandomOptOut,
    SiteVen,
    VenConfig,
    VenFleet,
)
from gridmesh.adapters.openadr.vtn import DrVtn, Refusal, VtnConfig, VtnError, registry_from_scenario

__all__ = [
    "AlwaysOptIn",
    "CertificateError",
    "Credentials",
    "CriticalShareOptOut",
    "DrEvent",
    "DrInstruction",
    "DrSignal",
    "DrVtn",
    "EventRefused",
    "EventResult",
    "OpenAdrPki",
    "Opt",
    "OptPolicy",
    "RandomOptOut",
    "Refusal",
    "SiteVen",
    "VenConfig",
    "VenFleet",
    "VenResult",
    "VtnConfig",
    "VtnError",
    "check_event",
    "create_ca",
    "events_for_peaks",
    "fingerprint_of",
    "issue_certificate",
    "provision_pki",
    "registry_from_scenario",
]
