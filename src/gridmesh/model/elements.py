"""The elements of a grid: one pydantic model per kind, the single source for parsing, range checks
and the documented scenario schema (``gridmesh scenario schema``).

Field constraints here are the simple per-field checks; checks that span elements (dangling references,
microgrid PCCs, profiles) live in :mod:`gridmesh.model.validation`.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gridmesh.model.kinds import (
    GeneratorKind,
    LoadClass,
    SiteLevel,
    SwitchedElement,
    SwitchKind,
    TapSide,
    VoltageLevel,
)

ElementId = Annotated[str, Field(min_length=1, description="unique id within its table")]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Element(BaseModel):
    """Common base: immutable, unknown fields refused (a typo must not pass silently)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)
    table: ClassVar[str] = ""

    id: ElementId
    in_service: bool = True


class Bus(Element):
    table: ClassVar[str] = "buses"

    vn_kv: Positive = Field(description="nominal line-to-line voltage, kV")
    level: VoltageLevel | None = Field(None, description="voltage level; derived from vn_kv when omitted")
    x: float | None = Field(None, description="longitude (WGS84) or x coordinate")
    y: float | None = Field(None, description="latitude (WGS84) or y coordinate")
    zone: str | None = Field(None, description="sub-network the bus belongs to, e.g. a SimBench subnet")
    v_min_pu: Positive = Field(0.9, description="lower voltage limit, pu")
    v_max_pu: Positive = Field(1.1, description="upper voltage limit, pu")

    @property
    def voltage_level(self) -> VoltageLevel:
        return self.level or VoltageLevel.of(self.vn_kv)


class Line(Element):
    table: ClassVar[str] = "lines"

    from_bus: str
    to_bus: str
    length_km: Positive
    r_ohm_per_km: NonNegative
    x_ohm_per_km: NonNegative
    c_nf_per_km: NonNegative = 0.0
    g_us_per_km: NonNegative = 0.0
    max_i_a: Positive = Field(description="thermal rating per circuit, A")
    r0_ohm_per_km: NonNegative | None = Field(None, description="zero sequence; default 4 × r1")
    x0_ohm_per_km: NonNegative | None = Field(None, description="zero sequence; default 3 × x1")
    c0_nf_per_km: NonNegative | None = Field(None, description="zero sequence; default 0.6 × c1")
    parallel: Annotated[int, Field(ge=1)] = 1


class Transformer(Element):
    table: ClassVar[str] = "transformers"

    hv_bus: str
    lv_bus: str
    sn_kva: Positive
    vn_hv_kv: Positive
    vn_lv_kv: Positive
    vk_percent: Positive
    vkr_percent: NonNegative
    pfe_kw: NonNegative = 0.0
    i0_percent: NonNegative = 0.0
    shift_degree: float = Field(0.0, description="phase shift HV→LV, a multiple of 30° (150 for Dyn5)")
    tap_side: TapSide = TapSide.HV
    tap_pos: int = 0
    tap_neutral: int = 0
    tap_min: int = 0
    tap_max: int = 0
    tap_step_percent: NonNegative = 0.0
    parallel: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _check(self) -> Transformer:
        if self.vkr_percent >= self.vk_percent:
            raise ValueError("vkr_percent must be smaller than vk_percent")
        if not self.tap_min <= self.tap_pos <= self.tap_max and not self.tap_max <= self.tap_pos <= self.tap_min:
            raise ValueError("tap_pos must lie between tap_min and tap_max")
        if self.shift_degree % 30:
            raise ValueError("shift_degree must be a multiple of 30")
        return self


class Switch(Element):
    """A switch between a bus and another bus, or between a bus and one end of a line or transformer."""

    table: ClassVar[str] = "switches"

    bus: str
    element: str = Field(description="id of the bus, line or transformer on the other side")
    element_type: SwitchedElement = SwitchedElement.BUS
    kind: SwitchKind = SwitchKind.DISCONNECTOR
    normally_closed: bool = True
    closed: bool | None = Field(None, description="present state; the normal state when omitted")
    remote: bool = Field(False, description="remote-controllable (SCADA/DA)")
    rated_i_a: Positive | None = None

    @property
    def is_closed(self) -> bool:
        return self.normally_closed if self.closed is None else self.closed


class ExternalGrid(Element):
    table: ClassVar[str] = "external_grids"

    bus: str
    vm_pu: Positive = 1.0
    va_degree: float = 0.0
    sk_mva: Positive = Field(1e9, description="short-circuit power of the upstream grid, MVA")
    rx_ratio: NonNegative = 0.1


class Load(Element):
    table: ClassVar[str] = "loads"

    bus: str
    p_kw: float = Field(description="active power (load convention); scales the p profile")
    q_kvar: float = 0.0
    load_class: LoadClass = LoadClass.RESIDENTIAL
    customers: Annotated[int, Field(ge=0)] = 1
    critical: bool = False
    p_profile: str | None = Field(None, description="normalised profile multiplied by p_kw")
    q_profile: str | None = Field(None, description="normalised profile multiplied by q_kvar")
    flexible_share: Fraction = Field(
        0.0, description="share of the present consumption that may be deferred (process load, pumping, heating)"
    )
    max_delay_h: Positive = Field(4.0, description="how long deferred energy may wait before it is consumed")


class Generator(Element):
    table: ClassVar[str] = "generators"

    bus: str
    kind: GeneratorKind
    p_kw: NonNegative = Field(description="installed active power; scales the profile (generator convention)")
    q_kvar: float = 0.0
    sn_kva: Positive | None = None
    profile: str | None = None
    curtailable: bool = True


class Battery(Element):
    table: ClassVar[str] = "batteries"

    bus: str
    e_kwh: Positive = Field(description="usable energy capacity")
    p_kw: Positive = Field(description="charge and discharge power limit")
    eta_charge: Annotated[float, Field(gt=0, le=1)] = 0.95
    eta_discharge: Annotated[float, Field(gt=0, le=1)] = 0.95
    soc_min: Fraction = 0.1
    soc_max: Fraction = 0.9
    soc_init: Fraction = 0.5
    grid_forming: bool = False

    @model_validator(mode="after")
    def _check(self) -> Battery:
        if self.soc_min >= self.soc_max:
            raise ValueError("soc_min must be smaller than soc_max")
        if not self.soc_min <= self.soc_init <= self.soc_max:
            raise ValueError("soc_init must lie in the SOC window [soc_min, soc_max]")
        return self


class EvCharger(Element):
    table: ClassVar[str] = "ev_chargers"

    bus: str
    p_kw: Positive = Field(description="maximum charging power per connector")
    connectors: Annotated[int, Field(ge=1)] = 1
    usage: Literal["home", "work", "public"] = Field("home", description="drives the arrival pattern")
    sessions_per_day: NonNegative = Field(1.0, description="mean plug-in sessions per connector per day")
    energy_kwh: Positive = Field(12.0, description="mean energy requested per session")


class Site(Element):
    """A node in the microgrid hierarchy.

    Level 1 (microgrid): ``buses`` behind the ``pcc`` switch; ``buses`` may be omitted and is then derived
    as everything the PCC separates from the external grid. Level 2 (group) and level 3 (virtual power
    plant) aggregate ``members`` (other sites); a VPP may also list individual ``assets``.
    """

    table: ClassVar[str] = "sites"

    name: str | None = None
    level: SiteLevel = SiteLevel.MICROGRID
    owner: str = "dso"
    pcc: str | None = Field(None, description="switch id of the point of common coupling (level 1)")
    buses: tuple[str, ...] = ()
    members: tuple[str, ...] = Field((), description="site ids aggregated by a level 2 or 3 site")
    assets: tuple[str, ...] = Field((), description="generator/battery/load ids in a VPP")


ELEMENT_TYPES: tuple[type[Element], ...] = (
    Bus,
    Line,
    Transformer,
    Switch,
    ExternalGrid,
    Load,
    Generator,
    Battery,
    EvCharger,
    Site,
)
TABLES: dict[str, type[Element]] = {cls.table: cls for cls in ELEMENT_TYPES}
