"""Reliability study on a hand-built 20 kV feeder pair whose indices are worked out by hand (FMEA).

Two cable feeders from busbar S, each behind a remote recloser (RA, RB)::

    S -RA- A1 - a1 -dA1- A2 - a2 -sA- A3 - a3 -dA2- A4 - a4 -T1- TL1 - b3
                 a1 -fA5- A5 - a5              (fuse-protected spur)
                 a2 -t2- TL2 - b2              (manual normally open tie)
    S -RB- B1 - b1 -dB1- B2 - b2 -sB- B3 - b3  (sB: remote sectionaliser)

Remote switches: RA, RB, sA (load-break), sB, T1 (normally open tie); manual: dA1, dA2, dB1, t2 (tie), fA5
(fuse). Nine fine sections, four remote sections. Customers a1…a5 = 10, 20, 30, 40, 5; b1…b3 = 15, 25, 35.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

from gridmesh.model.elements import Bus, ExternalGrid, Line, Load, Switch
from gridmesh.model.kinds import SwitchedElement, SwitchKind
from gridmesh.model.network import Network
from gridmesh.sim.reliability import Failure, FeederModel, ReliabilityRates, evaluate_failures, run_reliability
from gridmesh.sim.reliability_model import Stage

CUSTOMERS = {"a1": 10, "a2": 20, "a3": 30, "a4": 40, "a5": 5, "b1": 15, "b2": 25, "b3": 35}
N = sum(CUSTOMERS.values())  # 180
LINES = {  # id: (from, to, km)
    "A1": ("S", "a1", 1.0),
    "A2": ("a1", "a2", 2.0),
    "A3": ("a2", "a3", 1.0),
    "A4": ("a3", "a4", 2.0),
    "A5": ("a1", "a5", 1.0),
    "B1": ("S", "b1", 1.0),
    "B2": ("b1", "b2", 2.0),
    "B3": ("b2", "b3", 1.0),
    "TL1": ("a4", "b3", 1.0),
    "TL2": ("a2", "b2", 1.0),
}
SWITCHES = {  # id: (bus, line, kind, remote, normally closed)
    "RA": ("S", "A1", SwitchKind.RECLOSER, True, True),
    "RB": ("S", "B1", SwitchKind.RECLOSER, True, True),
    "dA1": ("a1", "A2", SwitchKind.DISCONNECTOR, False, True),
    "fA5": ("a1", "A5", SwitchKind.FUSE, False, True),
    "sA": ("a2", "A3", SwitchKind.LOAD_BREAK, True, True),
    "dA2": ("a3", "A4", SwitchKind.DISCONNECTOR, False, True),
    "T1": ("a4", "TL1", SwitchKind.TIE, True, False),
    "t2": ("a2", "TL2", SwitchKind.TIE, False, False),
    "dB1": ("b1", "B2", SwitchKind.DISCONNECTOR, False, True),
    "sB": ("b2", "B3", SwitchKind.SECTIONALISER, True, True),
}
# Cables only (no temporary faults), 0.1 failures per km·year, 5 h mean repair; switches never fail.
RATES = ReliabilityRates(cable_per_km_year=0.1, cable_repair_h=5.0, switch_per_year=0.0, transformer_per_year=0.0)


def feeder(tl1_max_i_a: float = 300.0) -> Network:
    buses = [Bus(id=b, vn_kv=20.0) for b in ("S", *CUSTOMERS)]
    lines = [
        Line(
            id=k,
            from_bus=f,
            to_bus=t,
            length_km=km,
            r_ohm_per_km=0.2,
            x_ohm_per_km=0.1,
            c_nf_per_km=250.0,
            max_i_a=tl1_max_i_a if k == "TL1" else 300.0,
        )
        for k, (f, t, km) in LINES.items()
    ]
    switches = [
        Switch(id=k, bus=b, element=e, element_type=SwitchedElement.LINE, kind=kind, remote=r, normally_closed=c)
        for k, (b, e, kind, r, c) in SWITCHES.items()
    ]
    loads = [Load(id=f"load-{b}", bus=b, p_kw=2.0 * n, customers=n) for b, n in CUSTOMERS.items()]
    return Network.from_elements([*buses, *lines, *switches, ExternalGrid(id="grid", bus="S"), *loads], name="hand")


@pytest.fixture(scope="module")
def model() -> FeederModel:
    return FeederModel.of(feeder(), RATES)


# Hand FMEA, per fault location: failure rate (1/yr) and customers restored by the remote stage, the manual
# stage, after repair, and momentarily by the sectionaliser. Worked out from the drawing above:
#  A1: RA trips (105); remote isolates {A1,A2,A5}, T1 feeds a3,a4 (70); crew opens dA1, T1 feeds a2 (20);
#      a1 and the fused spur a5 wait (15).
#  A2: remote as A1 (70); crew isolates A2 only and RA recloses a1, a5 (15); a2 waits (20).
#  A5: the fuse blows; only a5 (5) waits: no remote device, nothing upstream to restore.
#  A3: remote isolates {A3,A4}, RA recloses a1,a2,a5 (35); crew isolates A3, T1 feeds a4 (40); a3 waits (30).
#  A4: remote as A3 (35); crew recloses a3 (30); a4 waits (40).
#  B1: RB trips (75); remote isolates {B1,B2}, T1 feeds b3 (35); crew opens dB1, b2 via a tie (25); b1 waits.
#  B2 (+TL2): remote as B1 (35); crew recloses b1 (15); b2 waits (25).
#  B3 (+TL1): sB opens in RB's dead time: b1, b2 momentary (40); b3 waits (35).
FMEA = {  # location: (rate, remote, manual, repair, sectionaliser momentary)
    "A1": (0.1, 70, 20, 15, 0),
    "A2": (0.2, 70, 15, 20, 0),
    "A5": (0.1, 0, 0, 5, 0),
    "A3": (0.1, 35, 40, 30, 0),
    "A4": (0.2, 35, 30, 40, 0),
    "B1": (0.1, 35, 25, 15, 0),
    "B2": (0.3, 35, 15, 25, 0),
    "B3": (0.2, 0, 0, 35, 40),
}


def hand_indices(remote_min: float) -> dict[str, float]:
    """SAIFI, SAIDI, MAIFI from the FMEA table: Σ rate × effect / N (repairs are never under 5 minutes)."""
    ci = cmi = mom = 0.0
    for rate, remote, manual, repair, momentary in FMEA.values():
        remote_sustained = remote_min >= 5
        ci += rate * (remote * remote_sustained + manual + repair)
        cmi += rate * (remote * remote_min * remote_sustained + manual * 60 + repair * 300)
        mom += rate * (momentary + remote * (not remote_sustained))
    return {"saifi": ci / N, "saidi_min": cmi / N, "maifi": mom / N}


def test_fmea_table_matches_the_hand_analysis(model: FeederModel) -> None:
    for line, (rate, remote, manual, repair, momentary) in FMEA.items():
        m = model.element_mode["lines", line]
        got = model.table.customers[m, :, 0]
        assert model.table.permanent_per_year[m] == pytest.approx(rate)
        assert tuple(got) == (momentary, remote, manual, repair), line
    assert model.groups.names == ("system", "RA", "RB")
    assert tuple(model.groups.customers) == (180, 105, 75)


def test_hand_numbers_are_what_the_formulas_say() -> None:
    """The hand table above, summed by hand once more (guards the helper against itself)."""
    assert hand_indices(10.0)["saifi"] == pytest.approx(100.5 / 180)
    assert hand_indices(10.0)["saidi_min"] == pytest.approx(11675 / 180)
    assert hand_indices(2.0)["saifi"] == pytest.approx(55 / 180)
    assert hand_indices(2.0)["saidi_min"] == pytest.approx(11220 / 180)
    assert hand_indices(2.0)["maifi"] == pytest.approx(53.5 / 180)


def test_monte_carlo_matches_the_analytical_indices(model: FeederModel) -> None:
    with ThreadPoolExecutor(2) as pool:
        result = run_reliability(model, 20_000, seed=7, executor=pool)
    system = result.group("system")
    for variant, remote_min in (("without_flisr", 10.0), ("with_flisr", 2.0)):
        hand = hand_indices(remote_min)
        got = system.indices[variant]
        for key, estimate in (("saifi", got.saifi), ("saidi_min", got.saidi_min), ("maifi", got.maifi)):
            # 99.9 % interval (3.29 σ; ci95 is 1.96 σ) so the check is about the model, not about luck.
            assert abs(estimate.mean - hand[key]) <= estimate.ci95 * 3.29 / 1.96, (variant, key)
            assert system.expected[variant][key] == pytest.approx(hand[key], rel=1e-5)


def test_flisr_shortens_outages_but_every_trip_still_interrupts(model: FeederModel) -> None:
    """What must hold with the same sampled failures (common random numbers):

    * FLISR does not prevent a single protection trip, so sustained + momentary interruptions per customer
      are the same with and without it: SAIFI drops only by the customers FLISR brings back within 5 min,
      which IEEE 1366 then counts as momentary (MAIFI rises by exactly as much);
    * customers restored only by the crew or after repair are untouched, so SAIFI from them is unchanged;
    * SAIDI falls, because those brought back within minutes no longer count minutes.
    """
    result = run_reliability(model, 2_000, seed=3, executor=ThreadPoolExecutor(1))
    for group in result.groups:
        without, with_ = group.indices["without_flisr"], group.indices["with_flisr"]
        assert with_.saifi.mean + with_.maifi.mean == pytest.approx(without.saifi.mean + without.maifi.mean)
        assert with_.saidi_min.mean < without.saidi_min.mean
        assert with_.saifi.mean <= without.saifi.mean
    not_by_remote = sum(r * (man + rep) for r, _, man, rep, _ in FMEA.values()) / N
    assert result.group("system").expected["with_flisr"]["saifi"] == pytest.approx(not_by_remote, rel=1e-5)


def test_given_failures_give_every_index_exactly(model: FeederModel) -> None:
    failures = [
        Failure(year=0, element=("lines", "A2"), repair_h=2.0),
        Failure(year=1, element=("lines", "B3"), repair_h=3.0),
        Failure(year=1, element=("lines", "B1"), temporary=True),  # cleared by RB reclosing: 75 momentary
    ]
    result = evaluate_failures(model, 2, failures)
    # Year 0, A2: 70 back after 10 min, 15 after 60 min, 20 after 120 min. Year 1, B3: 35 after 180 min;
    # 40 momentary (sectionaliser) + 75 momentary (reclosed temporary fault). 2 kW average per customer.
    without = result.group("system").indices["without_flisr"]
    assert without.saifi.mean == pytest.approx((105 + 35) / 2 / N)
    assert without.saidi_min.mean == pytest.approx((70 * 10 + 15 * 60 + 20 * 120 + 35 * 180) / 2 / N)
    assert without.caidi_min.mean == pytest.approx((4000 + 6300) / (105 + 35))
    assert without.asai.mean == pytest.approx(1 - (10300 / 2 / N) / 525_600)
    assert without.maifi.mean == pytest.approx((0 + 40 + 75) / 2 / N)
    assert without.ens_kwh.mean == pytest.approx(2 * (4000 + 6300) / 60 / 2)
    with_ = result.group("system").indices["with_flisr"]  # the 70 come back after 2 min: momentary
    assert with_.saifi.mean == pytest.approx((35 + 35) / 2 / N)
    assert with_.saidi_min.mean == pytest.approx((15 * 60 + 20 * 120 + 35 * 180) / 2 / N)
    assert with_.caidi_min.mean == pytest.approx((3300 + 6300) / 70)
    assert with_.maifi.mean == pytest.approx((70 + 40 + 75) / 2 / N)
    assert with_.ens_kwh.mean == pytest.approx(2 * (3300 + 6300) / 60 / 2)
    feeder_a = result.group("RA").indices["without_flisr"]  # 105 customers; only year 0 touches them
    assert feeder_a.saifi.mean == pytest.approx(105 / 2 / 105)
    assert feeder_a.saidi_min.mean == pytest.approx(4000 / 2 / 105)
    assert np.allclose(result.annual_saidi_min["with_flisr"][:, 0], [3300 / N, 6300 / N])


def test_a_tie_too_weak_for_the_transfer_is_not_used() -> None:
    weak = FeederModel.of(feeder(tl1_max_i_a=1.0), RATES)  # a4 alone draws ≈ 2.3 A through TL1
    m = weak.element_mode["lines", "A3"]
    assert weak.table.customers[m, Stage.REPAIR, 0] == 30 + 40  # a4 now waits for the repair too
    unchecked = FeederModel.of(feeder(tl1_max_i_a=1.0), RATES, check_capacity=False)
    assert unchecked.table.customers[unchecked.element_mode["lines", "A3"], Stage.MANUAL, 0] == 40


def test_any_executor_gives_the_same_years(model: FeederModel) -> None:
    with ThreadPoolExecutor(2) as threads:
        a = run_reliability(model, 300, seed=11, executor=threads, chunks=6)
    with ProcessPoolExecutor(2) as processes:
        b = run_reliability(model, 300, seed=11, executor=processes, chunks=6)
    done: list[int] = []
    c = run_reliability(model, 300, seed=11, chunks=6, progress=done.append)
    for variant in a.annual_saidi_min:
        assert np.array_equal(a.annual_saidi_min[variant], b.annual_saidi_min[variant])
        assert np.array_equal(a.annual_saidi_min[variant], c.annual_saidi_min[variant])
    assert sorted(done) == [50] * 6
    different = run_reliability(model, 300, seed=12, executor=ThreadPoolExecutor(1), chunks=6)
    assert not np.array_equal(a.annual_saidi_min["with_flisr"], different.annual_saidi_min["with_flisr"])
