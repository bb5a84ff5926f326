"""Normalised profiles: scaling, time grid, merging and inline-series checks."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from gridmesh.errors import ProfileError
from gridmesh.model.profiles import Profiles, check_columns

START = datetime(2016, 1, 1)
QUARTER = timedelta(minutes=15)


@pytest.fixture
def table() -> Profiles:
    """Four steps of two profiles: ``pv`` rises 0 → 0.75, ``home`` is 1, 0.5, 0.25, 2."""
    values = np.array([[0.0, 1.0], [0.25, 0.5], [0.5, 0.25], [0.75, 2.0]], dtype=np.float32)
    return Profiles(START, QUARTER, ("pv", "home"), values)


def test_scaled_multiplies_each_column_by_its_rating(table: Profiles) -> None:
    got = table.scaled(["home", "pv", None, "home"], np.array([4.0, 10.0, 3.0, -2.0]), first=1, steps=3)
    expected = np.array(
        [
            # home×4, pv×10, constant 3, home×-2
            [2.0, 2.5, 3.0, -1.0],
            [1.0, 5.0, 3.0, -0.5],
            [8.0, 7.5, 3.0, -4.0],
        ]
    )
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)


def test_scaled_with_no_elements_has_the_right_shape(table: Profiles) -> None:
    assert table.scaled([], np.zeros(0), first=0, steps=4).shape == (4, 0)


def test_unknown_profile_is_a_profile_error_naming_it(table: Profiles) -> None:
    with pytest.raises(ProfileError, match="H0-Z"):
        table.scaled(["pv", "H0-Z"], np.ones(2), first=0, steps=2)


@pytest.mark.parametrize(("first", "steps"), [(-1, 2), (3, 2), (0, 5)])
def test_window_outside_the_table_is_a_profile_error(table: Profiles, first: int, steps: int) -> None:
    with pytest.raises(ProfileError, match="outside the profiles"):
        table.scaled(["pv"], np.ones(1), first=first, steps=steps)


def test_time_grid(table: Profiles) -> None:
    assert table.steps == 4
    assert table.end == START + timedelta(hours=1)
    assert table.step_of(START + timedelta(minutes=45)) == 3
    with pytest.raises(ProfileError, match="not on the profile grid"):
        table.step_of(START + timedelta(minutes=20))
    with pytest.raises(ProfileError):
        table.step_of(START - QUARTER)


def test_table_shape_must_match_names() -> None:
    with pytest.raises(ProfileError, match="one column per profile"):
        Profiles(START, QUARTER, ("a",), np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ProfileError, match="resolution must be positive"):
        Profiles(START, timedelta(0), ("a",), np.zeros((3, 1), dtype=np.float32))


def test_frame_round_trip(table: Profiles) -> None:
    frame = table.to_frame()
    assert list(frame.columns) == ["pv", "home"]
    assert frame.index[1] == pd.Timestamp("2016-01-01 00:15")
    back = Profiles.from_frame(frame)
    assert (back.start, back.resolution, back.names) == (table.start, table.resolution, table.names)
    np.testing.assert_array_equal(back.values, table.values)


def test_from_frame_refuses_irregular_or_too_short_index() -> None:
    irregular = pd.DataFrame(
        {"a": [1.0, 2.0, 3.0]}, index=pd.to_datetime(["2016-01-01 00:00", "2016-01-01 00:15", "2016-01-01 00:45"])
    )
    with pytest.raises(ProfileError, match="not regular"):
        Profiles.from_frame(irregular)
    with pytest.raises(ProfileError, match="at least two"):
        Profiles.from_frame(irregular.iloc[:1])


def test_merged_other_wins_on_equal_names(table: Profiles) -> None:
    other = Profiles(START, QUARTER, ("home", "wind"), np.full((4, 2), 9.0, dtype=np.float32))
    merged = table.merged(other)
    assert merged.names == ("pv", "home", "wind")
    np.testing.assert_array_equal(merged.values[:, 1], np.full(4, 9.0))
    np.testing.assert_array_equal(merged.values[:, 0], table.values[:, 0])
    assert Profiles.empty().merged(table) is table
    assert table.merged(Profiles.empty()) is table


def test_merging_different_time_grids_is_refused(table: Profiles) -> None:
    hourly = Profiles(START, timedelta(hours=1), ("x",), np.ones((4, 1), dtype=np.float32))
    with pytest.raises(ProfileError, match="resample"):
        table.merged(hourly)


def test_check_columns_names_the_odd_one_out() -> None:
    problems = check_columns({"a": [1, 2, 3, 4], "b": [1, 2, 3], "c": [4, 3, 2, 1], "d": [1, float("nan"), 1, 1]})
    assert set(problems) == {"b", "d"}
    assert "has 3 values but the other profiles have 4" in problems["b"]
    assert "non-finite" in problems["d"]
    assert check_columns({}) == {}
    assert check_columns({"a": [1.0, 2.0], "b": [3.0, 4.0]}) == {}
