"""Kinds of things in a grid, as string enums so that they read well in YAML and JSON."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class VoltageLevel(StrEnum):
    """Voltage level of a bus, derived from its nominal voltage unless given."""

    EHV = "ehv"
    HV = "hv"
    MV = "mv"
    LV = "lv"

    @classmethod
    def of(cls, vn_kv: float) -> VoltageLevel:
        """The usual European bands: LV ≤ 1 kV < MV ≤ 36 kV < HV ≤ 150 kV < EHV."""
        if vn_kv <= 1.0:
            return cls.LV
        if vn_kv <= 36.0:
            return cls.MV
        if vn_kv <= 150.0:
            return cls.HV
        return cls.EHV


class SwitchKind(StrEnum):
    """What a switch is able to do (and so what protection and FLISR may ask of it)."""

    BREAKER = "breaker"
    RECLOSER = "recloser"
    SECTIONALISER = "sectionaliser"
    LOAD_BREAK = "load_break"
    DISCONNECTOR = "disconnector"
    FUSE = "fuse"
    TIE = "tie"


class SwitchedElement(StrEnum):
    """What the far terminal of a switch is: another bus, or one end of a line or transformer."""

    BUS = "bus"
    LINE = "line"
    TRANSFORMER = "transformer"


class LoadClass(StrEnum):
    """Customer class of a load; drives KPIs, restoration priority and default profiles."""

    RESIDENTIAL = "residential"
    COMMERCIAL = "commercial"
    INDUSTRIAL = "industrial"
    AGRICULTURAL = "agricultural"


class GeneratorKind(StrEnum):
    """Primary energy of a generator; decides renewable share and CO2 factor."""

    PV = "pv"
    WIND = "wind"
    BIOMASS = "biomass"
    MICRO_HYDRO = "micro_hydro"
    CHP = "chp"

    @property
    def renewable(self) -> bool:
        """CHP is counted as fossil (natural gas) unless modelled as biomass."""
        return self is not GeneratorKind.CHP


class SiteLevel(IntEnum):
    """Level in the microgrid hierarchy."""

    MICROGRID = 1
    GROUP = 2
    VPP = 3


class TapSide(StrEnum):
    """Winding of a transformer that carries the tap changer."""

    HV = "hv"
    LV = "lv"
