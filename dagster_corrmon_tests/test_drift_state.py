"""Drift on real seasonal data: clean partitions pass, a column's change of state fails.

Seattle weather (vega_datasets), the repository's regression spec: the model trains on 2012 and
the drift check judges every later month with the same functions the check runs, over the
batches the pipeline's own feature code builds, recording into a real (temporary SQLite) store so
each partition sees the ones before it.
"""

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.checks.drift import importance_shares
from dagster_corrmon.core.drift import calibrate_profile
from dagster_corrmon.core.profile import build_reference_profile
from dagster_corrmon.core.signal import Severity
from dagster_corrmon.examples.seattle import __file__ as seattle_init
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon_tests.feature_batches import (
    judge_drift_in_order,
    load_spec_with,
    partition_windows,
    pipeline_batches,
)

SPEC = Path(seattle_init).parent / "seattle_weather.yaml"


def _judge_all(batches, artifact, corrmon: CorrmonResource) -> dict[str, Any]:
    return judge_drift_in_order(batches, artifact, corrmon)


@pytest.fixture
def corrmon(tmp_path: Path) -> CorrmonResource:
    return CorrmonResource(database_url=f"sqlite:///{tmp_path / 'corrmon.db'}")


def test_seasonal_months_do_not_fail_the_drift_check(corrmon: CorrmonResource) -> None:
    # A month is never a random sample of the training year: every column "drifted" in every
    # month against the whole-year reference (36 of 36 failed). Judged also against the months
    # just before it and the reference's own months, a clean month passes.
    batches = pipeline_batches(load_spec_with(SPEC))
    outcomes = _judge_all(batches, batches.train(), corrmon)
    failed = [key for key, outcome in outcomes.items() if not outcome.passed]  # type: ignore[attr-defined]
    assert len(outcomes) == 36
    assert len(failed) <= 0.05 * len(outcomes), failed
    # the seasonal columns did move away from the reference: that is recorded, not failed
    gradual = {
        s.column
        for o in outcomes.values()
        for s in o.signals  # type: ignore[attr-defined]
        if s.metadata.get("consequence") == "gradual"
    }
    assert "temp_min" in gradual


def _edited(edit: Callable[[str, pd.DataFrame], pd.DataFrame]):
    def apply(source: str, partition: str, batch: pd.DataFrame) -> pd.DataFrame:
        return edit(partition, batch.copy())

    return apply


def test_a_unit_change_of_the_important_feature_fails_error_at_onset(
    corrmon: CorrmonResource,
) -> None:
    onset = "2014-06-01"

    def unit(partition: str, batch: pd.DataFrame) -> pd.DataFrame:
        if partition >= onset and "temp_min" in batch:  # the daily feed only
            batch["temp_min"] = batch["temp_min"] * 1.8 + 32  # °C → °F
        return batch

    batches = pipeline_batches(load_spec_with(SPEC), edit=_edited(unit))
    outcomes = _judge_all(batches, batches.train(), corrmon)
    at_onset = outcomes[onset]
    assert not at_onset.passed  # type: ignore[attr-defined]
    assert at_onset.severity is Severity.ERROR  # type: ignore[attr-defined]
    assert "temp_min" in at_onset.description  # type: ignore[attr-defined]


def test_a_feature_null_in_training_that_fills_fails(corrmon: CorrmonResource) -> None:
    # wind is blanked through 2013 (training included), then delivered again. (The regressor
    # cannot be fitted on an all-null column, so the reference is built as the model builds it,
    # without the model: severity is then "importance unknown", WARN.)
    refill = "2014-01-01"

    def blank(partition: str, batch: pd.DataFrame) -> pd.DataFrame:
        if partition < refill and "wind" in batch:  # the daily feed only
            batch["wind"] = np.nan
        return batch

    batches = pipeline_batches(load_spec_with(SPEC), edit=_edited(blank))
    frames = [batches.features[key] for key in batches.training]
    columns = list(batches.spec.features.columns)
    profile = calibrate_profile(
        build_reference_profile(pd.concat(frames), columns=columns, keep_empty=True), frames
    )
    assert profile.empty_columns == ("wind",)
    artifact = SimpleNamespace(reference_profile=profile, feature_importances=None)
    outcomes = _judge_all(batches, artifact, corrmon)
    before = outcomes["2013-12-01"]
    after = outcomes[refill]
    assert before.passed  # type: ignore[attr-defined]
    assert not after.passed  # type: ignore[attr-defined]
    (signal,) = [s for s in after.signals if s.column == "wind"]  # type: ignore[attr-defined]
    assert signal.passed is False
    assert signal.metadata["state"] == "filled"


def test_a_substantial_unseen_category_fails_within_the_distance_threshold(
    corrmon: CorrmonResource,
) -> None:
    # 40 % of the weather labels recoded to a value the reference never had.
    onset = "2014-03-01"

    def recode(partition: str, batch: pd.DataFrame) -> pd.DataFrame:
        if partition >= onset and "weather" in batch:  # the conditions feed only
            rows = np.random.default_rng(0).random(len(batch)) < 0.4
            batch.loc[rows, "weather"] = "haze"
        return batch

    batches = pipeline_batches(load_spec_with(SPEC), edit=_edited(recode))
    outcomes = _judge_all(batches, batches.train(), corrmon)
    (signal,) = [s for s in outcomes[onset].signals if s.column == "weather"]  # type: ignore[attr-defined]
    assert signal.passed is False
    assert signal.metadata["novel_substantial"] is True
    assert signal.metadata["novel_categories"] == ["haze"]
    assert 0.2 < signal.metadata["novel_share"] < 0.6


FLIGHTS = Path(seattle_init).parent.parent / "flights" / "flights_at_departure.yaml"


def test_a_recoded_important_category_fails_error_at_onset(corrmon: CorrmonResource) -> None:
    # flights at departure, weekly as the built-in scenarios run it: 40 % of the schedule feed's
    # destinations recoded to a code the reference never had, from the 11th week.
    spec = load_spec_with(
        FLIGHTS,
        partitioning={"cadence": "weekly", "start": "2013-01-07"},
        training={"start": "2013-01-07", "end": "2013-03-04"},
    )
    weeks = list(partition_windows(spec))[:12]
    onset = weeks[10]
    rng = np.random.default_rng(0)

    def recode(source: str, partition: str, batch: pd.DataFrame) -> pd.DataFrame:
        if source == "schedule" and partition >= onset:
            batch = batch.copy()
            batch.loc[rng.random(len(batch)) < 0.4, "dest"] = "ZZZ"
        return batch

    batches = pipeline_batches(spec, edit=recode, partitions=weeks)
    artifact = batches.train()
    shares = importance_shares(artifact.feature_importances)
    assert shares["dest"] >= spec.monitoring.consequential_importance  # the model uses it
    outcomes = _judge_all(batches, artifact, corrmon)
    assert all(outcomes[week].passed for week in weeks[8:10])  # type: ignore[attr-defined]
    at_onset = outcomes[onset]
    assert at_onset.severity is Severity.ERROR  # type: ignore[attr-defined]
    (signal,) = [s for s in at_onset.signals if s.column == "dest"]  # type: ignore[attr-defined]
    assert signal.passed is False
    assert signal.severity is Severity.ERROR
    assert signal.metadata["novel_categories"] == ["ZZZ"]
