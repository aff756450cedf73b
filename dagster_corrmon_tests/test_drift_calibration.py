"""Drift thresholds calibrated on the reference's own batches (``calibrate_profile``).

The oracle for the statistics is scipy (``wasserstein_distance``, ``jensenshannon``) on the raw
batches; the floor is recomputed with numpy; the behaviour is checked on data whose batches are
clustered the way real partitions are (a shared per-batch effect, like a day's weather).
"""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from dagster_corrmon.core.drift import (
    CALIBRATION_SIGMAS,
    JENSENSHANNON,
    MIN_CALIBRATION_BATCHES,
    WASSERSTEIN,
    batch_noise_floor,
    calibrate_profile,
    detect_drift_from_profile,
)
from dagster_corrmon.core.profile import DatasetProfile, build_reference_profile
from dagster_corrmon.errors import InputDataError

ROWS_PER_BATCH = 900
CITIES = [f"city_{i:03d}" for i in range(100)]


def clustered_batch(rng: np.random.Generator, *, shift: float = 0.0) -> pd.DataFrame:
    """One 'day': a humidity-like value shared by hours, and a route mix over 100 cities."""
    day_level = rng.normal(60.0 + shift, 8.0)
    hours = rng.normal(day_level, 3.0, size=24).round(1)  # the day's 24 readings
    humidity = hours[rng.integers(0, 24, size=ROWS_PER_BATCH)]  # each row sees one of them
    weights = np.linspace(1.0, 3.0, len(CITIES))
    city = rng.choice(CITIES, size=ROWS_PER_BATCH, p=weights / weights.sum())
    return pd.DataFrame({"humidity": humidity, "city": city})


def _reference(seed: int = 7, batches: int = 30) -> tuple[DatasetProfile, list[pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    frames = [clustered_batch(rng) for _ in range(batches)]
    profile = build_reference_profile(pd.concat(frames, ignore_index=True))
    return calibrate_profile(profile, frames), frames


def test_batch_statistics_are_scipys_distances_of_each_batch_to_the_reference() -> None:
    profile, frames = _reference()
    reference = pd.concat(frames, ignore_index=True)
    humidity = profile.batch_statistics["humidity"]
    city = profile.batch_statistics["city"]
    assert humidity.method == WASSERSTEIN and city.method == JENSENSHANNON
    assert len(humidity.values) == len(city.values) == len(frames)
    assert humidity.rows == tuple([ROWS_PER_BATCH] * len(frames))
    std = float(np.std(reference["humidity"]))
    share = reference["city"].value_counts(normalize=True).sort_index()
    for frame, w_value, js_value in zip(frames, humidity.values, city.values, strict=True):
        # The reference has ≤ 1000 distinct humidity values, so the profile is exact.
        expected = wasserstein_distance(frame["humidity"], reference["humidity"]) / std
        assert w_value == pytest.approx(expected, rel=1e-9)
        current = frame["city"].value_counts(normalize=True).reindex(share.index, fill_value=0)
        assert js_value == pytest.approx(jensenshannon(share, current), rel=1e-9)


def test_the_floor_is_mean_plus_three_sample_sigmas() -> None:
    values = [0.1, 0.2, 0.15, 0.3, 0.25]
    expected = np.mean(values) + CALIBRATION_SIGMAS * np.std(values, ddof=1)
    assert batch_noise_floor(values) == pytest.approx(expected, rel=1e-12)


def testclustered_batches_stop_drifting_but_a_real_shift_still_does() -> None:
    profile, _ = _reference()
    fresh = np.random.default_rng(2024)
    same_process = [clustered_batch(fresh) for _ in range(40)]

    def drifted(frame: pd.DataFrame, *, calibrated: bool) -> dict[str, bool]:
        results = detect_drift_from_profile(profile, frame, calibrated=calibrated)
        return {r.column: r.drifted for r in results}

    raw = [drifted(f, calibrated=False) for f in same_process]
    calibrated = [drifted(f, calibrated=True) for f in same_process]
    # Evidently's fixed 0.1: the clustered column and the 100-city mix drift on most new batches
    # drawn from the very process the reference came from.
    assert sum(d["humidity"] for d in raw) >= 20
    assert sum(d["city"] for d in raw) >= 20
    # Above the reference batches' noise floor: (almost) never.
    assert sum(d["humidity"] for d in calibrated) <= 2
    assert sum(d["city"] for d in calibrated) <= 2
    # A shift of the day level by 5 of its standard deviations, and a new route mix, still drift.
    shifted = clustered_batch(np.random.default_rng(5), shift=40.0)
    rerouted = shifted.assign(city=np.where(np.arange(ROWS_PER_BATCH) % 2 == 0, "city_000", "x"))
    results = {r.column: r for r in detect_drift_from_profile(profile, rerouted)}
    assert results["humidity"].drifted and results["city"].drifted
    floor = batch_noise_floor(profile.batch_statistics["humidity"].values)
    assert results["humidity"].threshold == pytest.approx(floor)
    assert results["humidity"].configured_threshold == 0.1
    assert results["humidity"].reference_batches == 30


def test_calibration_is_skipped_where_it_does_not_apply() -> None:
    profile, frames = _reference(batches=MIN_CALIBRATION_BATCHES - 1)
    assert profile.batch_statistics == {}  # too few batches: Evidently's rule
    profile, frames = _reference()
    # A current batch far smaller than the reference batches: the floor does not describe it.
    tiny = frames[0].head(ROWS_PER_BATCH // 10)
    (result,) = detect_drift_from_profile(profile, tiny, columns=["humidity"])
    assert result.batch_floor is None and result.threshold == result.configured_threshold == 0.1
    # A p-value test (reference of ≤ 1000 rows) is never calibrated.
    small = build_reference_profile(frames[0].head(500))
    small = calibrate_profile(small, [f.head(100) for f in frames[:10]])
    assert small.batch_statistics == {}
    # A forced method other than the calibrated one keeps its own threshold.
    (psi,) = detect_drift_from_profile(profile, frames[1], columns=["city"], method="psi")
    assert psi.batch_floor is None and psi.threshold == 0.1


def test_batch_statistics_survive_json_and_bad_ones_are_named() -> None:
    profile, frames = _reference()
    again = DatasetProfile.from_json(profile.to_json())
    assert again.batch_statistics == profile.batch_statistics
    (before,) = detect_drift_from_profile(profile, frames[3], columns=["city"])
    (after,) = detect_drift_from_profile(again, frames[3], columns=["city"])
    assert before == after
    data = profile.to_dict()
    data["batch_statistics"]["city"]["values"][2] = math.inf
    with pytest.raises(InputDataError, match="batch_statistics of column 'city'"):
        DatasetProfile.from_dict(data)
    data = profile.to_dict()
    data["batch_statistics"]["nope"] = data["batch_statistics"]["city"]
    with pytest.raises(InputDataError, match="'nope'"):
        DatasetProfile.from_dict(data)
    # An uncalibrated profile's JSON is unchanged (no batch_statistics key at all).
    plain = build_reference_profile(frames[0])
    assert "batch_statistics" not in plain.to_dict()
    with pytest.raises(InputDataError, match="reference batch 1 must be a pandas DataFrame"):
        calibrate_profile(plain, [frames[0], "not a frame"])  # type: ignore[list-item]
