"""What corrmon needs to know about one monitored model."""

from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from dagster_corrmon.core.attribution import AttributionConfig, RepairFunction
from dagster_corrmon.core.metrics import METRICS
from dagster_corrmon.errors import ConfigError

# Given the Dagster instance of the correlation run, return the repair test for this model
# (re-score degraded partitions with a suspect column or feed restored), or None.
RepairProvider = Callable[[dg.DagsterInstance], RepairFunction | None]


@dataclass(frozen=True, kw_only=True)
class MonitoredModel:
    """A model whose performance corrmon explains.

    ``model`` is the training asset (its materializations are the model versions);
    ``evaluation`` the asset whose checks record the performance metric signals (often the
    evaluation asset, where labels meet predictions); ``predictions`` the scoring asset, whose
    runs are the ones flagged *at risk* before labels arrive. ``metric`` names the metric the
    incidents are about (a :data:`~dagster_corrmon.core.metrics.METRICS` id). ``repair``
    provides the interventional repair test: the spec pipeline builds its own; any project whose
    model and features assets follow its protocol gets one from
    :func:`~dagster_corrmon.pipeline.repair.build_rescoring_repair`.
    """

    model: dg.AssetKey
    evaluation: dg.AssetKey
    predictions: dg.AssetKey | None = None
    metric: str = "roc_auc"
    lookback_partitions: int = 120
    config: AttributionConfig = field(default_factory=AttributionConfig)
    repair: RepairProvider | None = None

    def __post_init__(self) -> None:
        for name in ("model", "evaluation", "predictions"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, dg.AssetKey.from_user_string(value))
        if self.metric not in METRICS:
            known = ", ".join(sorted(METRICS))
            raise ConfigError(f"MonitoredModel.metric {self.metric!r} is unknown; known: {known}")
        if self.lookback_partitions < 8:
            raise ConfigError("MonitoredModel.lookback_partitions must be >= 8")

    @property
    def name(self) -> str:
        return self.model.to_user_string()

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better
