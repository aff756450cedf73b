"""``corrmon generate``: seeded scenario suites over any monitored pipeline spec, with their
ground truth measured by counterfactual.

For one pipeline spec the generator trains the spec's model on its training window (in-process,
:mod:`dagster_corrmon.scenarios.offline`) and ranks the model's features by their permutation
importance into three tiers of equal size — *top*, *middle*, *near_zero* — so every dataset is
stratified by its own model, with no importance threshold. Each scenario then draws, from a
generator seeded by ``(seed, index)``:

* one or two injections, or none (a *pure control*, one scenario in ``control_every``);
* per injection: the kind (all twelve of :data:`~dagster_corrmon.scenarios.injections.
  INJECTION_KINDS`, in turn, so a suite covers them evenly), the importance tier and a column
  of that tier fitting the kind (numeric for unit changes and shifts, categorical for new
  categories; a whole feed for batch-level kinds, whose tier is its most important feature's),
  the magnitude (*mild* / *strong*), the start (after ``lead`` clean scored partitions, the
  history the engine needs before it may judge a shift) and the duration (*transient*: 1–3
  partitions, or *persistent*: to the end).

**Ground truth by counterfactual, not by hand.** Each injection alone is applied to its active
partitions and the model scored on the clean and on the injected rows; the metric loss is
bootstrapped by row key (a row and its injected copies are resampled together, so a duplicate
stays with its original) and the injection is *consequential* when the 95 % interval of the loss
lies above zero. A partition that yields no prediction at all (a failed run, a broken schema)
has no measurable loss. The expectation written for a consequential injection is an incident
detected within one partition; for any other, an at-risk incident at delay 0 and no consequential
one (``consequential: false``, ``detect_within: 0``). A scenario whose injections are all
non-consequential is a control (``expect.control``).

Each scenario is a YAML file in the format of the built-in ones (``base:`` the spec), so
``corrmon simulate`` runs it unchanged; ``manifest.json`` beside them holds each scenario's strata
and measured losses (``corrmon score --labels``).
"""

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import TypeAdapter

from dagster_corrmon.core.metrics import get_metric
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.pipeline.artifacts import ModelArtifact
from dagster_corrmon.pipeline.spec import PipelineSpec, load_spec
from dagster_corrmon.scenarios.injections import INJECTION_KINDS, Injection
from dagster_corrmon.scenarios.offline import OfflinePipeline, PartitionUnscorable

TIERS = ("top", "middle", "near_zero")
MAGNITUDES = ("mild", "strong")
DURATIONS = ("transient", "persistent")
FEED_KINDS = frozenset({"duplicate_rows", "missing_batch", "delayed_batch", "upstream_run_failure"})
NUMERIC_KINDS = frozenset({"unit_change", "benign_drift", "covariate_shift", "code_change"})
CATEGORICAL_KINDS = frozenset({"new_category"})
CONFIDENCE = 0.95
N_RESAMPLES = 300

_INJECTION = TypeAdapter(Injection)


@dataclass(frozen=True)
class Target:
    """A column an injection can hit: the raw feed column and the model feature it feeds."""

    source: str
    column: str
    feature: str
    importance: float
    tier: str
    numeric: bool


@dataclass(frozen=True)
class Counterfactual:
    """The metric on an injection's active partitions, clean and injected, and the loss CI."""

    metric: str
    clean: float | None
    injected: float | None
    loss: float | None  # positive = worse, in the metric's own units
    loss_low: float | None
    loss_high: float | None
    consequential: bool
    rows: int
    note: str | None = None


def feature_targets(spec: PipelineSpec, model: ModelArtifact) -> list[Target]:
    """Every (feed, column) → feature the model reads, with its importance tier.

    Tiers split the features ranked by importance into thirds (the top third, the middle, the
    rest); a raw column feeding several features takes the most important one.
    """
    ranked = sorted(model.feature_importances.items(), key=lambda kv: (-kv[1], kv[0]))
    size = max(1, -(-len(ranked) // 3))
    tier_of = {feature: TIERS[min(index // size, 2)] for index, (feature, _) in enumerate(ranked)}
    numeric = set(spec.features.numeric) | set(spec.features.derived)
    # The row key and the feeds' time columns identify rows and partitions: corrupting them is
    # another defect than a corrupted feature (rows stop joining their labels).
    identity = set(spec.row_key) | {s.time_column for s in spec.sources if s.time_column}
    best: dict[tuple[str, str], Target] = {}
    for feature, importance in ranked:
        for source, column in model.feature_sources.get(feature, ()):
            key = (source, column)
            if (
                key in best
                or column in identity
                or (source == spec.target_source.name and column == spec.target.column)
            ):
                continue
            best[key] = Target(
                source=source,
                column=column,
                feature=feature,
                importance=float(importance),
                tier=tier_of[feature],
                numeric=feature in numeric,
            )
    return sorted(best.values(), key=lambda t: (-t.importance, t.source, t.column))


def counterfactual(
    pipeline: OfflinePipeline,
    model: ModelArtifact,
    injection: Any,
    partitions: Sequence[str],
    *,
    metric: str,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> Counterfactual:
    """Score the model on the clean and the injected ``partitions`` (where the injection is
    active) and bootstrap the metric loss by row key; see the module docstring."""
    spec = get_metric(metric)
    active = [p for p in partitions if injection.active(dt.date.fromisoformat(p[:10]))]
    clean_frames, injected_frames = [], []
    for partition in active:
        clean_frames.append(pipeline.evaluate(partition, model).frame)
        try:
            injected_frames.append(pipeline.evaluate(partition, model, [injection]).frame)
        except PartitionUnscorable as error:
            return Counterfactual(
                metric, None, None, None, None, None, False, 0, note=f"no prediction: {error}"
            )
    if not active:
        return Counterfactual(metric, None, None, None, None, None, False, 0, note="not active")
    clean = pd.concat(clean_frames, ignore_index=True)
    injected = pd.concat(injected_frames, ignore_index=True)
    if clean.empty or injected.empty:
        return Counterfactual(metric, None, None, None, None, None, False, 0, note="no labels")
    row_key = list(pipeline.spec.row_key)
    codes, uniques = pd.factorize(
        pd.concat([clean[row_key], injected[row_key]], ignore_index=True).apply(tuple, axis=1)
    )
    clean_ids, injected_ids = codes[: len(clean)], codes[len(clean) :]
    keys = np.unique(clean_ids)

    def value(frame: pd.DataFrame, index: np.ndarray) -> float:
        return float(
            spec.function(
                frame["label"].to_numpy(float)[index], frame["score"].to_numpy(float)[index]
            )
        )

    sign = 1.0 if spec.higher_is_better else -1.0
    clean_value = value(clean, np.arange(len(clean)))
    injected_value = value(injected, np.arange(len(injected)))
    rng = np.random.default_rng([seed, len(clean), len(injected)])
    losses = []
    for _ in range(n_resamples):
        counts = np.bincount(rng.choice(keys, size=len(keys)), minlength=len(uniques))
        a = np.repeat(np.arange(len(clean)), counts[clean_ids])
        b = np.repeat(np.arange(len(injected)), counts[injected_ids])
        if len(a) and len(b):
            losses.append(sign * (value(clean, a) - value(injected, b)))
    finite = np.array([x for x in losses if np.isfinite(x)])
    if finite.size < n_resamples // 2:
        return Counterfactual(
            metric,
            clean_value,
            injected_value,
            None,
            None,
            None,
            False,
            len(injected),
            note="the metric is undefined on most resamples",
        )
    tail = (1 - CONFIDENCE) / 2
    low, high = (float(q) for q in np.quantile(finite, [tail, 1 - tail]))
    return Counterfactual(
        metric=metric,
        clean=clean_value,
        injected=injected_value,
        loss=sign * (clean_value - injected_value),
        loss_low=low,
        loss_high=high,
        consequential=low > 0,
        rows=len(injected),
    )


def _parameters(kind: str, magnitude: str, rng: np.random.Generator) -> dict[str, Any]:
    strong = magnitude == "strong"
    if kind == "schema_change":
        return {"action": str(rng.choice(["rename", "drop"])) if strong else "retype"}
    if kind == "null_spike":
        return {"fraction": 0.8 if strong else 0.2}
    if kind == "unit_change":
        return {"scale": float(rng.choice([0.01, 100.0])) if strong else 1.35}
    if kind in ("benign_drift", "covariate_shift"):
        return {"shift_std": 3.0 if strong else 0.75}
    if kind == "code_change":
        return {"scale": 0.0 if strong else 0.5, "code_version": f"buggy-{magnitude}"}
    if kind == "new_category":
        return {"fraction": 0.6 if strong else 0.15}
    if kind == "duplicate_rows":
        return {"fraction": 1.0 if strong else 0.2}
    if kind == "delayed_batch":
        return {"delay": 3 if strong else 1}
    if kind == "label_delay":
        return {"extra_delay": 4 if strong else 2}
    return {}


def _pick_target(
    kind: str, tier: str, targets: Sequence[Target], rng: np.random.Generator
) -> Target | None:
    fitting = [
        t
        for t in targets
        if (kind not in NUMERIC_KINDS or t.numeric)
        and (kind not in CATEGORICAL_KINDS or not t.numeric)
    ]
    if not fitting:
        return None
    same_tier = [t for t in fitting if t.tier == tier] or fitting
    return same_tier[int(rng.integers(len(same_tier)))]


def draw_injection(
    *,
    kind: str,
    spec: PipelineSpec,
    targets: Sequence[Target],
    partitions: Sequence[str],
    lead: int,
    rng: np.random.Generator,
    injection_id: str,
) -> tuple[Any, dict[str, Any]] | None:
    """One injection of ``kind`` and its strata, or ``None`` when the spec has no column fitting
    the kind (e.g. no categorical feature for ``new_category``)."""
    tier = str(rng.choice(TIERS))
    magnitude = str(rng.choice(MAGNITUDES))
    duration = str(rng.choice(DURATIONS))
    start_index = int(rng.integers(lead, max(lead + 1, len(partitions) - 1)))
    start = dt.date.fromisoformat(partitions[start_index][:10])
    end: dt.date | None = None
    if duration == "transient":
        last = min(len(partitions) - 1, start_index + int(rng.integers(0, 3)))
        end = dt.date.fromisoformat(partitions[last][:10])
    body: dict[str, Any] = {"id": injection_id, "kind": kind, "start": start, "end": end}
    body.update(_parameters(kind, magnitude, rng))
    if kind == "label_delay":
        body["source"] = spec.target_source.name
        tier = "labels"
    elif kind in FEED_KINDS:
        feeds = sorted({t.source for t in targets} - {spec.target_source.name}) or sorted(
            {t.source for t in targets}
        )
        static = {s.name for s in spec.sources if s.static}
        feeds = [f for f in feeds if f not in static] or feeds
        if not feeds:
            return None
        feed = feeds[int(rng.integers(len(feeds)))]
        body["source"] = feed
        tier = next(t.tier for t in targets if t.source == feed)
    else:
        target = _pick_target(kind, tier, targets, rng)
        if target is None:
            return None
        tier = target.tier
        if kind == "code_change":
            body.update(source="features", column=target.feature)
        else:
            body.update(source=target.source, column=target.column)
    if kind == "schema_change" and body.get("action") == "rename":
        body["new_name"] = f"{body['column']}_renamed"
    injection = _INJECTION.validate_python(body)
    strata = {"kind": kind, "tier": tier, "magnitude": magnitude, "duration": duration}
    return injection, strata


def generate(
    spec_path: Path,
    *,
    n: int,
    seed: int,
    out_dir: Path,
    lead: int = 8,
    body: int = 8,
    control_every: int = 6,
    progress: Any = print,
) -> dict[str, Any]:
    """Write ``n`` scenarios over the spec at ``spec_path`` into ``out_dir``; return the manifest.

    ``lead`` clean scored partitions precede the first possible injection (and are the engine's
    ``min_reference``); ``body`` partitions follow, where injections start.
    """
    if n < 1:
        raise ConfigError(f"generate: --n must be at least 1, got {n}")
    spec = load_spec(spec_path)
    pipeline = OfflinePipeline(spec, seed=seed)
    scoring = pipeline.scoring_keys()
    if len(scoring) < lead + 2:
        raise ConfigError(
            f"generate: {spec_path} has {len(scoring)} partitions after its training window; "
            f"the scenarios need at least lead + 2 = {lead + 2}"
        )
    partitions = scoring[: lead + body]
    progress(f"training {spec.name} on {pipeline.training_keys[0]} .. {pipeline.training_keys[-1]}")
    model = pipeline.train()
    targets = feature_targets(spec, model)
    if not targets:
        raise ConfigError(f"generate: the model of {spec_path} reads no feed column")
    from dagster_corrmon.scenarios.simulate import default_metric

    metric = default_metric(spec)  # type: ignore[arg-type]  # a pipeline spec has the same metrics
    out_dir.mkdir(parents=True, exist_ok=True)
    base = os.path.relpath(spec_path.resolve(), out_dir.resolve())
    end_key = scoring[lead + body] if len(scoring) > lead + body else None
    window_end = (
        dt.date.fromisoformat(end_key[:10])
        if end_key
        else dt.date.fromisoformat(partitions[-1][:10]) + dt.timedelta(days=1)
    )
    manifest: dict[str, Any] = {
        "spec": str(spec_path),
        "dataset": spec.name,
        "cadence": spec.partitioning.cadence,
        "seed": seed,
        "metric": metric,
        "partitions": partitions,
        "targets": [asdict(t) for t in targets],
        "scenarios": {},
    }
    kind_cycle = list(INJECTION_KINDS)
    drawn = 0
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        name = f"{spec.name}_s{seed}_{index:03d}"
        injections: list[Any] = []
        strata: dict[str, dict[str, Any]] = {}
        if control_every and index % control_every == control_every - 1:
            count = 0
        else:
            count = 1 + int(rng.random() < 0.3)
        for number in range(count):
            for _attempt in range(len(kind_cycle)):
                kind = kind_cycle[drawn % len(kind_cycle)]
                drawn += 1
                found = draw_injection(
                    kind=kind,
                    spec=spec,
                    targets=targets,
                    partitions=partitions,
                    lead=lead,
                    rng=rng,
                    injection_id=f"{kind}_{number + 1}",
                )
                if found is not None:
                    injections.append(found[0])
                    strata[found[0].id] = found[1]
                    break
        expected = []
        truths: dict[str, Any] = {}
        for injection in injections:
            truth = counterfactual(pipeline, model, injection, partitions, metric=metric, seed=seed)
            truths[injection.id] = asdict(truth)
            expected.append(
                {"injection": injection.id, "consequential": True, "detect_within": 1}
                if truth.consequential
                else {"injection": injection.id, "consequential": False, "detect_within": 0}
            )
        document: dict[str, Any] = {
            "base": base,
            "name": name,
            "simulation": {"end": window_end, "seed": seed, "min_reference": lead},
            "incidents": [_injection_yaml(i) for i in injections],
            "expect": {
                "control": not any(e["consequential"] for e in expected),
                "incidents": expected,
            },
        }
        path = out_dir / f"{name}.yaml"
        path.write_text(_header(strata, truths) + yaml.safe_dump(document, sort_keys=False))
        manifest["scenarios"][name] = {
            "file": path.name,
            "dataset": spec.name,
            "cadence": spec.partitioning.cadence,
            "tiers": {key: value["tier"] for key, value in strata.items()},
            "strata": strata,
            "counterfactual": truths,
        }
        progress(
            f"  {name}: "
            + (
                ", ".join(
                    f"{i.kind} ({strata[i.id]['tier']}, "
                    f"{'consequential' if truths[i.id]['consequential'] else 'absorbed'})"
                    for i in injections
                )
                or "control"
            )
        )
    manifest_path = out_dir / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    merged = {**previous, **manifest}
    merged["scenarios"] = {**previous.get("scenarios", {}), **manifest["scenarios"]}
    manifest_path.write_text(json.dumps(merged, indent=2, default=str))
    return manifest


def _injection_yaml(injection: Any) -> dict[str, Any]:
    data = injection.model_dump(mode="json", exclude_none=True)
    return {key: value for key, value in data.items()}


def _header(strata: Mapping[str, Mapping[str, Any]], truths: Mapping[str, Any]) -> str:
    lines = ["# Generated by corrmon generate; ground truth measured by counterfactual."]
    for key, stratum in strata.items():
        truth = truths[key]
        loss = truth.get("loss")
        interval = (
            f"loss {loss:+.4f} [{truth['loss_low']:+.4f}, {truth['loss_high']:+.4f}]"
            if loss is not None and truth.get("loss_low") is not None
            else truth.get("note") or "no measurable loss"
        )
        lines.append(
            f"# {key}: {stratum['tier']} tier, {stratum['magnitude']}, {stratum['duration']}; "
            f"{truth['metric']} {interval}"
        )
    return "\n".join(lines) + "\n"
