"""The trained model as one immutable artifact: estimator plus everything monitoring needs.

The model asset's value is a :class:`ModelArtifact`. Besides the fitted estimator it carries what
the checks and the attribution engine read back later, so nothing has to be recomputed or
guessed: the ``reference_profile`` of the training features (what drift is measured against),
the ``feature_importances`` measured by permutation on a holdout at training time (what drift
severity is weighted by), the training metrics, and the exact feature encoding — so scoring, and
the attribution's *repair test* (re-score with a suspect column restored), use the model exactly
as it was trained.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from dagster_corrmon.core.profile import DatasetProfile
from dagster_corrmon.errors import InputDataError
from dagster_corrmon.pipeline.features import numbers

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class ScoredBatch:
    """Scores of one batch, scored in timed requests of ``batch_size`` rows.

    ``latency_ms[i]`` is the wall time of the request row ``i`` was part of (what a caller of a
    serving endpoint would have waited); ``error[i]`` is True when that request was rejected by
    the estimator (its score is NaN).
    """

    scores: np.ndarray
    latency_ms: np.ndarray
    error: np.ndarray
    error_messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelArtifact:
    """A fitted model and the evidence monitoring needs about it.

    ``threshold`` is the decision threshold on the classification score (``score >= threshold``
    predicts 1); ``target_rule`` says how the label was made from the target column (e.g.
    ``"arr_delay > 15"``). ``feature_importances`` maps each feature to its mean permutation
    importance (drop in the holdout score when the feature is shuffled; ≤ 0 means "no predictive
    power") and ``feature_importance_std`` to its standard deviation across repeats.
    ``version`` is the artifact's content hash and equals the model asset's data version.
    """

    estimator: Any
    task: Task
    target: str
    target_rule: str
    feature_columns: tuple[str, ...]
    categorical_columns: tuple[str, ...]
    category_levels: Mapping[str, tuple[str, ...]]
    reference_profile: DatasetProfile
    feature_importances: Mapping[str, float]
    feature_importance_std: Mapping[str, float]
    importance_scoring: str
    training_metrics: Mapping[str, float | None]
    threshold: float
    training_partitions: tuple[str, ...]
    training_rows: int
    holdout_rows: int
    estimator_path: str
    feature_sources: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    version: str = ""
    threads: int = 1  # OpenMP threads when scoring (see ModelSpec.threads)

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.feature_columns if c not in self.categorical_columns)

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The estimator's input matrix: floats, categoricals as codes of the training levels.

        A category never seen in training (or beyond the kept levels) becomes missing, which
        HistGradientBoosting routes like a missing value instead of failing.
        """
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            raise InputDataError(f"scoring: feature columns {missing} are missing from the batch")
        columns: dict[str, np.ndarray] = {}
        for name in self.feature_columns:
            if name in self.category_levels:
                values = frame[name].astype(object).where(frame[name].notna(), None)
                codes = pd.Categorical(values, categories=list(self.category_levels[name])).codes
                columns[name] = np.where(codes < 0, np.nan, codes).astype(float)
            else:
                columns[name] = numbers(frame[name])
        return pd.DataFrame(columns, index=frame.index)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores of a batch: P(label = 1) for classification, the prediction for regression."""
        if len(frame) == 0:
            return np.zeros(0)
        with threadpool_limits(limits=self.threads, user_api="openmp"):
            return self.score_matrix(self.encode(frame))

    def score_matrix(self, matrix: pd.DataFrame) -> np.ndarray:
        """Scores of an already-encoded matrix (see :meth:`encode`)."""
        if self.task == "classification":
            probabilities = self.estimator.predict_proba(matrix)
            classes = list(self.estimator.classes_)
            if 1 in classes:
                return np.asarray(probabilities[:, classes.index(1)], dtype=float)
            return np.zeros(len(matrix))
        return np.asarray(self.estimator.predict(matrix), dtype=float)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Predicted labels (classification, ``score >= threshold``) or the scores (regression)."""
        if self.task == "classification":
            return (scores >= self.threshold).astype(float)
        return scores

    def score_in_requests(self, frame: pd.DataFrame, *, batch_size: int) -> ScoredBatch:
        """Score a batch in timed requests of ``batch_size`` rows, like a serving endpoint would.

        A request the estimator rejects (``ValueError``/``TypeError``, e.g. a column that became
        text) is recorded as failed rows — an error rate is data, not a crashed run.
        """
        n = len(frame)
        scores = np.full(n, np.nan)
        latency = np.zeros(n)
        error = np.zeros(n, dtype=bool)
        messages: list[str] = []
        if n == 0:
            return ScoredBatch(scores, latency, error)
        matrix = self.encode(frame)
        with threadpool_limits(limits=self.threads, user_api="openmp"):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                began = time.perf_counter()
                try:
                    scores[start:stop] = self.score_matrix(matrix.iloc[start:stop])
                except (ValueError, TypeError) as failure:
                    error[start:stop] = True
                    messages.append(f"rows {start}-{stop - 1}: {failure}")
                latency[start:stop] = (time.perf_counter() - began) * 1000.0
        return ScoredBatch(scores, latency, error, tuple(messages))
