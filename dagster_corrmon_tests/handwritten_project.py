"""A small, ordinary Dagster project — plain ``@dg.asset``s, no corrmon spec — with corrmon's check
factories attached. This is how most users meet the library: their graph, untouched, plus one
block of ``build_*_checks`` calls and a ``CorrmonResource``.

The graph (daily partitions)::

    weather (raw feed) ──> features ──> predictions (scored + labelled)
                                  ╲       ↑
                                   delay_model (unpartitioned; trained on a fixed window)

``weather`` and ``predictions`` take a ``corruption`` config so tests can inject the incidents
the checks must catch: a null spike, a °F→°C unit change, a renamed column, a retyped column, a
new category, a benign drift in an unimportant feature, and a degraded model.

The label depends on ``wind_speed`` and ``temp_f`` only, so the model's permutation importances
make those two consequential and ``humidity``/``pressure``/``station``/``hour`` not.
"""

import zlib
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from dagster_corrmon.checks import (
    AllowedValues,
    BaselinePolicy,
    InRange,
    MatchesRegex,
    Unique,
    build_data_quality_checks,
    build_drift_checks,
    build_freshness_checks,
    build_model_evaluation_checks,
    build_schema_contract_checks,
)
from dagster_corrmon.core.profile import DatasetProfile, build_reference_profile
from dagster_corrmon.resource import CorrmonResource

ROWS_PER_DAY = 400
STATIONS = ("EWR", "JFK", "LGA")
FEATURES = ("station", "hour", "temp_f", "humidity", "wind_speed", "pressure")
TRAINING_DAYS = tuple(f"2024-01-{day:02d}" for day in range(1, 8))

daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")

CORRUPTIONS = (
    "none",
    "null_spike",  # 40 % of temp_f missing
    "unit_change",  # temp_f delivered in °C
    "renamed_column",  # temp_f arrives as temperature_f
    "retyped_column",  # humidity arrives as text ("45.2%")
    "new_category",  # a fourth station code appears
    "humidity_percent",  # humidity in % instead of a fraction: drift in an unimportant feature
)


def make_weather(partition: str, *, rows: int = ROWS_PER_DAY) -> pd.DataFrame:
    """One day of hourly-ish readings, deterministic per partition; ``delayed`` is the outcome."""
    seed = zlib.crc32(partition.encode())
    rng = np.random.default_rng(seed)
    temp_f = rng.normal(45.0, 12.0, rows)
    wind = rng.gamma(4.0, 3.0, rows)
    logit = 1.6 * (wind - 12.0) / 6.0 - 1.2 * (temp_f - 45.0) / 12.0 - 0.4
    delayed = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    day = date.fromisoformat(partition).strftime("%Y%m%d")
    return pd.DataFrame(
        {
            "reading_id": [f"W-{day}-{i:05d}" for i in range(rows)],
            "station": rng.choice(STATIONS, rows),
            "hour": rng.integers(0, 24, rows),
            "temp_f": temp_f.round(1),
            "humidity": rng.beta(5.0, 3.0, rows).round(3),
            "wind_speed": wind.round(1),
            "pressure": rng.normal(1015.0, 6.0, rows).round(1),
            "delayed": delayed,
        }
    )


def corrupt_weather(frame: pd.DataFrame, corruption: str, *, seed: int = 7) -> pd.DataFrame:
    """``frame`` with one injected incident (see :data:`CORRUPTIONS`)."""
    frame = frame.copy()
    rng = np.random.default_rng(seed)
    if corruption == "null_spike":
        frame.loc[rng.random(len(frame)) < 0.4, "temp_f"] = np.nan
    elif corruption == "unit_change":
        frame["temp_f"] = ((frame["temp_f"] - 32.0) * 5.0 / 9.0).round(1)
    elif corruption == "renamed_column":
        frame = frame.rename(columns={"temp_f": "temperature_f"})
    elif corruption == "retyped_column":
        frame["humidity"] = [f"{100 * value:.1f}%" for value in frame["humidity"]]
    elif corruption == "new_category":
        frame.loc[rng.random(len(frame)) < 0.3, "station"] = "TEB"
    elif corruption == "humidity_percent":
        frame["humidity"] = frame["humidity"] * 100.0
    elif corruption != "none":
        raise ValueError(f"unknown corruption {corruption!r} (one of {CORRUPTIONS})")
    return frame


class WeatherConfig(dg.Config):
    corruption: str = "none"


class PredictionsConfig(dg.Config):
    degrade: bool = False


@dg.asset(partitions_def=daily, code_version="1", group_name="raw", kinds={"pandas"})
def weather(context: dg.AssetExecutionContext, config: WeatherConfig) -> pd.DataFrame:
    """Raw weather readings joined with the flight outcome (``delayed``)."""
    return corrupt_weather(make_weather(context.partition_key), config.corruption)


@dg.asset(partitions_def=daily, code_version="1", group_name="features", kinds={"pandas"})
def features(weather: pd.DataFrame) -> pd.DataFrame:
    """Model features: the weather columns the model reads, plus the label."""
    return weather.drop(columns=["reading_id"]).reset_index(drop=True)


@dataclass(frozen=True)
class DelayModel:
    """What a model asset holds: the estimator plus what monitoring needs about it."""

    estimator: Any
    feature_columns: tuple[str, ...]
    reference_profile: DatasetProfile
    feature_importances: dict[str, float]

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(_design(frame, self.feature_columns))[:, 1]


def _design(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    design = pd.DataFrame({column: frame[column] for column in columns})
    codes = {station: float(i) for i, station in enumerate(STATIONS)}
    design["station"] = [codes.get(station, -1.0) for station in design["station"]]
    return design.astype(float)


def train_delay_model() -> DelayModel:
    """Fit on the training window; permutation importances on a holdout (scikit-learn)."""
    from sklearn.inspection import permutation_importance
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = pd.concat([make_weather(day) for day in TRAINING_DAYS], ignore_index=True)
    train, holdout = data.iloc[: len(data) * 3 // 4], data.iloc[len(data) * 3 // 4 :]
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    estimator.fit(_design(train, FEATURES), train["delayed"])
    importances = permutation_importance(
        estimator,
        _design(holdout, FEATURES),
        holdout["delayed"],
        scoring="roc_auc",
        n_repeats=5,
        random_state=0,
    )
    return DelayModel(
        estimator=estimator,
        feature_columns=FEATURES,
        reference_profile=build_reference_profile(data.loc[:, list(FEATURES)]),
        feature_importances={
            name: float(value)
            for name, value in zip(FEATURES, importances["importances_mean"], strict=True)
        },
    )


@dg.asset(code_version="1", group_name="model", kinds={"sklearn"})
def delay_model() -> DelayModel:
    """The deployed model, trained on the first week of January."""
    return train_delay_model()


@dg.asset(partitions_def=daily, code_version="1", group_name="model", kinds={"pandas"})
def predictions(
    features: pd.DataFrame, delay_model: DelayModel, config: PredictionsConfig
) -> pd.DataFrame:
    """Scored rows with their (already known) label, request latency and error flag."""
    rng = np.random.default_rng(11)
    score = delay_model.score(features)
    if config.degrade:
        # A broken deployment: scores barely related to the features any more.
        score = np.clip(0.15 * score + 0.85 * rng.random(len(score)), 0.0, 1.0)
    return pd.DataFrame(
        {
            "delayed": features["delayed"].to_numpy(),
            "score": score,
            "latency_ms": rng.gamma(3.0, 8.0, len(score)),
            "error": (rng.random(len(score)) < 0.01).astype(int),
        }
    )


BASELINE = BaselinePolicy(min_history=4)

quality_checks = build_data_quality_checks(
    assets=[weather],
    completeness={"temp_f": 0.05, "wind_speed": 0.05},
    validity=[
        InRange(column="temp_f", min_value=-40, max_value=130),
        InRange(column="humidity", min_value=0, max_value=1),
        AllowedValues(column="station", values=STATIONS),
        MatchesRegex(column="reading_id", pattern=r"^W-\d{8}-\d{5}$"),
        Unique(columns=("reading_id",)),
    ],
    baseline=BASELINE,
)
schema_checks = build_schema_contract_checks(assets=[weather])
freshness_checks = build_freshness_checks(assets=[weather], lookback_partitions=3)
drift_checks = build_drift_checks(
    assets=[features],
    reference=dg.AssetKey("delay_model"),
    feature_importance="from_reference_asset",
    columns=list(FEATURES),
    consequential_importance=0.1,
    # Evidently's default (normed Wasserstein 0.1) alarms on sampling noise at 400 rows a day:
    # iid days of this generator reach 0.20. 0.25 still sees every injected drift (≥ 0.34).
    threshold=0.25,
)
performance_checks = build_model_evaluation_checks(
    asset=predictions,
    label_column="delayed",
    score_column="score",
    latency_column="latency_ms",
    error_column="error",
    n_resamples=200,
    baseline=BaselinePolicy(min_history=4, severity="error"),
)

ASSETS = [weather, features, delay_model, predictions]
CHECKS = [*quality_checks, *schema_checks, *freshness_checks, *drift_checks, *performance_checks]

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    resources={"corrmon": CorrmonResource()},
)
