"""Profiles: normalised time series that scale element ratings (SimBench's convention).

A load's active power at step t is ``p_kw × profiles[p_profile][t]``; a generator's output is
``p_kw × profiles[profile][t]``. Keeping profiles normalised and shared keeps a year of thousands of
elements small (a few dozen columns) and lets static data and time-varying data live apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridmesh.errors import ProfileError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Profiles:
    """A table of normalised profiles on a regular time grid (``start``, ``resolution``)."""

    start: datetime
    resolution: timedelta
    names: tuple[str, ...]
    values: npt.NDArray[np.float32]  # shape (steps, len(names))

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ProfileError(
                f"profile table has shape {self.values.shape} but {len(self.names)} names; "
                "give exactly one column per profile name"
            )
        if self.resolution <= timedelta(0):
            raise ProfileError("profile resolution must be positive")

    @classmethod
    def empty(cls, start: datetime = datetime(2016, 1, 1), resolution: timedelta = timedelta(minutes=15)) -> Profiles:
        return cls(start, resolution, (), np.zeros((0, 0), dtype=np.float32))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Profiles:
        """From a DataFrame with a regular DatetimeIndex and one column per profile."""
        index = pd.DatetimeIndex(frame.index)
        if len(index) < 2:
            raise ProfileError("a profile table needs at least two time steps to know its resolution")
        steps = np.diff(index.asi8)
        if not np.all(steps == steps[0]):
            raise ProfileError("profile time index is not regular; resample it to a fixed resolution")
        return cls(
            start=index[0].to_pydatetime().replace(tzinfo=None),
            resolution=pd.Timedelta(int(steps[0]), unit="ns").to_pytimedelta(),
            names=tuple(str(c) for c in frame.columns),
            values=frame.to_numpy(dtype=np.float32),
        )

    def to_frame(self) -> pd.DataFrame:
        index = pd.date_range(self.start, periods=self.steps, freq=self.resolution)
        return pd.DataFrame(self.values, index=index, columns=list(self.names))

    @property
    def steps(self) -> int:
        return int(self.values.shape[0])

    @property
    def end(self) -> datetime:
        """First instant not covered."""
        return self.start + self.steps * self.resolution

    def merged(self, other: Profiles) -> Profiles:
        """Columns of both; ``other`` wins on equal names. Both must share start and resolution."""
        if not other.names:
            return self
        if not self.names:
            return other
        if (other.start, other.resolution) != (self.start, self.resolution) or other.steps != self.steps:
            raise ProfileError(
                f"cannot merge profiles starting {other.start} every {other.resolution} ({other.steps} steps) "
                f"with profiles starting {self.start} every {self.resolution} ({self.steps} steps); "
                "resample them to one time grid"
            )
        keep = [i for i, n in enumerate(self.names) if n not in set(other.names)]
        return Profiles(
            self.start,
            self.resolution,
            tuple(self.names[i] for i in keep) + other.names,
            np.hstack([self.values[:, keep], other.values]),
        )

    def step_of(self, when: datetime) -> int:
        """Index of the time step that starts at ``when``."""
        offset = when - self.start
        step, rest = divmod(offset, self.resolution)
        if rest or step < 0:
            raise ProfileError(f"{when} is not on the profile grid starting {self.start} every {self.resolution}")
        return int(step)

    def selector(self, names: Sequence[str | None]) -> ProfileSelector:
        """A reusable gather of the columns ``names`` (None: no profile, constant 1)."""
        column = {name: i for i, name in enumerate(self.names)}
        missing = sorted({n for n in names if n and n not in column})
        if missing:
            raise ProfileError(f"unknown profile(s): {', '.join(missing[:5])}; add them under profiles")
        cols = np.array([column[n] if n else -1 for n in names], dtype=np.int64)
        return ProfileSelector(self, cols)

    def scaled(self, names: Sequence[str | None], scale: FloatArray, first: int, steps: int) -> FloatArray:
        """``scale[j] × profile[names[j]]`` for steps ``first … first+steps-1``; no profile means constant."""
        return self.selector(names).scaled(scale, first, steps)


@dataclass(frozen=True)
class ProfileSelector:
    """Column positions resolved once, so that a study gathers each window with one numpy take."""

    profiles: Profiles
    cols: npt.NDArray[np.int64]

    def scaled(self, scale: FloatArray, first: int, steps: int) -> FloatArray:
        """``(steps, n)`` values: one gather of the needed columns and one broadcast multiply."""
        p = self.profiles
        if first < 0 or first + steps > p.steps:
            raise ProfileError(
                f"steps {first}…{first + steps - 1} are outside the profiles ({p.steps} steps from {p.start})"
            )
        has = self.cols >= 0
        factors = np.ones((steps, self.cols.size))
        factors[:, has] = p.values[first : first + steps][:, self.cols[has]]
        return factors * np.asarray(scale, dtype=np.float64)[None, :]


def check_columns(series: Mapping[str, Sequence[float]]) -> dict[str, str]:
    """Problems with inline series: name → what is wrong (all columns must be equally long and finite)."""
    problems: dict[str, str] = {}
    lengths = {name: len(values) for name, values in series.items()}
    if not lengths:
        return problems
    expected = max(set(lengths.values()), key=list(lengths.values()).count)
    for name, values in series.items():
        if len(values) != expected:
            problems[name] = f"has {len(values)} values but the other profiles have {expected}"
        elif not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
            problems[name] = "contains non-finite values"
    return problems
