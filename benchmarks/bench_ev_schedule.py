"""How long the smart-charging scheduler takes: whole periods and the live re-plan on a new arrival.

Synthetic but demo-shaped: ``--areas`` transformer areas (160–400 kVA, an evening base load), with
``--feeder`` also one feeder group over all of them, ``--chargers`` 11 kW home chargers per area with one
evening session a day (arrival 18:00 ± 2 h, 12 h dwell, 12 kWh on average), 15-minute steps and the default
time-of-use tariff. Prints the solve time of one plan over ``--days`` days, its size, the energy delivered,
and the time of a re-plan at 19:00 on the last day after one more car arrives (the central system's path).
``--peak`` is the
per-group peak charge (€/kW, as the study sets it from the tariff; 0 leaves the term out).

Without a feeder group the problem splits into one LP per area; a feeder group couples them all into one
LP, which HiGHS's simplex solves much more slowly, above all with the peak term (past the time limit the
scheduler drops the peak and smoothing terms for that part and solves again).

    .venv/bin/python benchmarks/bench_ev_schedule.py [--areas 90] [--chargers 25] [--days 1 7]
        [--feeder] [--peak 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from gridmesh.devices.ev import Sessions
from gridmesh.market.tariff import TimeOfUseTariff
from gridmesh.optim.ev_schedule import ChargingProblem, replan, schedule


def problem(areas: int, chargers: int, days: int, *, feeder: bool, peak: float, seed: int = 7) -> ChargingProblem:
    rng = np.random.default_rng(seed)
    steps, dt_h = 96 * days, 0.25
    n_chargers = areas * chargers
    charger = np.repeat(np.arange(n_chargers), days)
    day = np.tile(np.arange(days), n_chargers)
    arrival = (day * 96 + np.clip(rng.normal(72, 8, day.size), 0, 95)).astype(np.int64)
    departure = np.minimum(arrival + 48, steps)
    energy = rng.gamma(4.0, 3.0, day.size)
    order = np.argsort(arrival, kind="stable")
    groups = np.zeros((areas + feeder, n_chargers), dtype=bool)
    groups[np.repeat(np.arange(areas), chargers), np.arange(n_chargers)] = True
    groups[areas:] = True  # the feeder above all areas
    rating = rng.choice([160.0, 250.0, 400.0], areas)
    hour = np.arange(steps) * dt_h % 24
    base = 0.35 + 0.25 * np.exp(-(((hour - 19) / 3) ** 2))
    headroom = (0.97 - base[:, None]) * rating
    if feeder:
        headroom = np.column_stack([headroom, np.full(steps, 0.6 * rating.sum())])
    times = pd.date_range("2016-01-04", periods=steps, freq="15min")
    return ChargingProblem(
        sessions=Sessions(charger[order], arrival[order], departure[order], energy[order]),
        p_max_kw=np.full(order.size, 11.0),
        groups=groups,
        headroom_kw=headroom,
        price_eur_per_kwh=TimeOfUseTariff().import_price(times),
        dt_h=dt_h,
        peak_eur_per_kw=peak,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--areas", type=int, default=90)
    parser.add_argument("--chargers", type=int, default=25)
    parser.add_argument("--days", type=int, nargs="+", default=[1, 7])
    parser.add_argument("--feeder", action="store_true", help="one more group over all areas")
    parser.add_argument("--peak", type=float, default=10.0, help="per-group peak charge, €/kW")
    args = parser.parse_args()
    title = f"{args.areas} areas × {args.chargers} chargers, feeder group: {args.feeder}, peak {args.peak:g} €/kW"
    table = Table(title=title, title_justify="left")
    for column in ("days", "sessions", "LP variables", "plan s", "delivered", "re-plan s"):
        table.add_column(column, justify="right")
    for days in args.days:
        p = problem(args.areas, args.chargers, days, feeder=args.feeder, peak=args.peak)
        started = time.perf_counter()
        plan = schedule(p)
        planned = time.perf_counter() - started
        now = (days - 1) * 96 + 76  # 19:00 on the last day
        s = p.sessions
        arrived = ChargingProblem(
            **{
                **p.__dict__,
                "sessions": Sessions(
                    np.append(s.charger, 0),
                    np.append(s.arrival, now),
                    np.append(s.departure, min(now + 40, p.steps)),
                    np.append(s.energy_kwh, 20.0),
                ),
                "p_max_kw": np.append(p.p_max_kw, 11.0),
            }
        )
        done = np.append(plan.session_kw[:, :now].sum(axis=1) * p.dt_h, 0.0)
        started = time.perf_counter()
        replan(arrived, now=now, delivered_kwh=done)
        replanned = time.perf_counter() - started
        delivered = 100.0 * plan.delivered_kwh.sum() / s.energy_kwh.sum()
        table.add_row(
            str(days),
            f"{len(s):,}",
            f"{int(plan.extra['variables']):,}",
            f"{planned:.2f}",
            f"{delivered:.2f} %",
            f"{replanned:.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
