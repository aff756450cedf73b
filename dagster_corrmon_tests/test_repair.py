"""Restoring a suspect column: undo monotone corruption, keep rows, refuse when values are gone."""

import numpy as np
import pandas as pd
from scipy import stats

from dagster_corrmon.pipeline.repair import restore_column


def test_quantile_mapping_undoes_a_unit_change_and_keeps_the_row_order() -> None:
    rng = np.random.default_rng(0)
    minutes = pd.Series(rng.gamma(2.0, 15.0, 5000))
    donor = pd.Series(rng.gamma(2.0, 15.0, 20000))  # the last good partitions
    hours = minutes / 60  # the defect
    restored = restore_column(hours, donor, np.random.default_rng(1))
    assert restored is not None
    restored = np.asarray(restored, dtype=float)
    assert stats.spearmanr(restored, minutes).statistic > 0.999  # rows keep their relation
    assert np.median(np.abs(restored - minutes)) < 1.5  # back on the minute scale
    assert stats.ks_2samp(restored, donor).statistic < 0.02


def test_no_verdict_when_most_values_are_missing_and_categories_are_redrawn() -> None:
    rng = np.random.default_rng(0)
    donor = pd.Series(rng.normal(size=1000))
    mostly_missing = pd.Series(np.where(rng.random(1000) < 0.8, np.nan, 1.0))
    assert restore_column(mostly_missing, donor, rng) is None
    categories = pd.Series(["AA", "UA", "__NEW__", "DL"] * 250)
    redrawn = restore_column(categories, pd.Series(["AA", "UA", "DL"] * 100), rng)
    assert redrawn is not None
    assert set(pd.Series(redrawn)) <= {"AA", "UA", "DL"}
    assert (
        pd.Series(redrawn)[categories != "__NEW__"] == categories[categories != "__NEW__"]
    ).all()
