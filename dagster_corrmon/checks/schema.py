"""Schema contract checks: columns added, removed, renamed or retyped against a recorded contract.

Dagster's own ``build_column_schema_change_checks`` (beta) compares the ``dagster/column_schema``
metadata of the last two materializations: it needs the asset to emit that metadata, and a change
that persists for two partitions stops being reported. These checks judge the asset's *value*
against a fixed contract — given by the user (a mapping or a JSON/YAML file), or, with
``contract=None``, the schema of the first materialization the check sees, recorded in the corrmon
store — so every partition that breaks the contract fails, for as long as it breaks it.

Types are compared as *families* (``integer``, ``float``, ``bool``, ``datetime``, ``timedelta``,
``string``, ``object``), not pandas dtypes: ``int64`` vs ``Int32`` is no contract change, a numeric
column arriving as strings is. An integer column that arrives as float is reported as *widened*
(WARN), because pandas turns an integer column with a single null into float64. A column with no
non-null value has no observable type: arriving empty never counts as retyped, but a column that
was empty in the contract and arrives typed does (WARN: its state changed, no consumer's type
broke).

A *rename* is inferred, heuristically, when a removed and an added column share a type family and
their value profiles are near-identical (quantiles within ``rename_tolerance`` of the column's
spread, the same null fraction, the same top categories). Profiles come from the last stored
schema observation that had the removed column, else from the recorded contract.
"""

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import yaml

from dagster_corrmon import metadata as md
from dagster_corrmon.checks._common import (
    AssetTarget,
    CheckOutcome,
    check_name_prefix,
    positive_number,
    resolve_targets,
    worst,
)
from dagster_corrmon.checks._plan import check_definitions, frame_plan
from dagster_corrmon.core.signal import Severity, Signal, SignalKind
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.resource import DEFAULT_RESOURCE_KEY, CorrmonResource, MaterializationTags

FACTORY = "build_schema_contract_checks"

#: Stored signal names (stable identifiers).
CONTRACT_SIGNAL = "schema_contract"
COLUMN_ADDED = "column_added"
COLUMN_REMOVED = "column_removed"
COLUMN_RENAMED = "column_renamed"
COLUMN_RETYPED = "column_retyped"

FAMILIES = ("integer", "float", "bool", "datetime", "timedelta", "string", "object")
_EMPTY = "empty"
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_TOP_VALUES = 20
_SEVERITY_OF_CHANGE = {
    COLUMN_ADDED: Severity.WARN,
    COLUMN_REMOVED: Severity.ERROR,
    COLUMN_RENAMED: Severity.ERROR,
    COLUMN_RETYPED: Severity.ERROR,
}


def dtype_family(series: pd.Series) -> str:
    """The type family of a column (``"empty"`` when no non-null value shows its type)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = pd.Series(dtype.categories)
        return dtype_family(categories) if len(categories) else _EMPTY
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    return {
        "string": "string",
        "empty": _EMPTY,
        "integer": "integer",
        "floating": "float",
        "mixed-integer-float": "float",
        "decimal": "float",
        "boolean": "bool",
        "datetime": "datetime",
        "datetime64": "datetime",
        "date": "datetime",
        "timedelta": "timedelta",
        "timedelta64": "timedelta",
        "bytes": "string",
    }.get(inferred, "object")


def normalize_type(name: str, *, where: str) -> str:
    """A contract's type name (a family, or a pandas/numpy dtype string) as a family."""
    text = str(name).strip().lower()
    aliases = {
        "int": "integer",
        "float": "float",
        "double": "float",
        "str": "string",
        "text": "string",
        "category": "string",
        "categorical": "string",
        "boolean": "bool",
        "timestamp": "datetime",
        "date": "datetime",
        "object": "string",
    }
    if text in FAMILIES and text != "object":
        return text
    if text in aliases:
        return aliases[text]
    try:
        dtype = pd.api.types.pandas_dtype(text)
    except TypeError as error:
        raise ConfigError(
            f"{where}: unknown column type {name!r} (use one of {', '.join(FAMILIES)} or a "
            "pandas dtype such as 'int64', 'float64', 'datetime64[ns]')"
        ) from error
    family = dtype_family(pd.Series([], dtype=dtype))
    return "string" if family in (_EMPTY, "object") else family


def load_contract(contract: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, str]:
    """``{column: family}`` from a mapping or a JSON/YAML file (``{"columns": {...}}`` or flat)."""
    where = f"{FACTORY}(contract=...)"
    if isinstance(contract, str | os.PathLike):
        path = Path(contract)
        where = f"{FACTORY}: contract file {str(path)!r}"
        if not path.is_file():
            raise ConfigError(f"{where} does not exist")
        text = path.read_text()
        try:
            loaded = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise ConfigError(f"{where} is not valid JSON/YAML: {error}") from error
    else:
        loaded = contract
    if isinstance(loaded, Mapping) and isinstance(loaded.get("columns"), Mapping):
        loaded = loaded["columns"]
    if not isinstance(loaded, Mapping) or not loaded:
        raise ConfigError(f"{where}: expected a non-empty mapping of column name to type")
    columns: dict[str, str] = {}
    for column, type_name in loaded.items():
        if not isinstance(column, str) or not isinstance(type_name, str):
            raise ConfigError(
                f"{where}: column {column!r} must map to a type name string, got {type_name!r}"
            )
        columns[column] = normalize_type(type_name, where=f"{where}, column {column!r}")
    return columns


def column_sketch(series: pd.Series, family: str) -> dict[str, Any]:
    """A few numbers that identify a column's values well enough to recognise it renamed."""
    n = len(series)
    nulls = int(series.isna().sum())
    sketch: dict[str, Any] = {"n": n, "null_fraction": nulls / n if n else 0.0}
    values = series.dropna()
    if family in ("integer", "float", "bool", "datetime", "timedelta") and len(values):
        if family == "datetime":
            stamps = pd.Series(pd.to_datetime(values, utc=True))
            numbers = stamps.astype("int64").to_numpy(dtype=np.float64) / 1e9
        elif family == "timedelta":
            numbers = pd.Series(pd.to_timedelta(values)).dt.total_seconds().to_numpy(np.float64)
        else:
            numbers = pd.Series(pd.to_numeric(values, errors="coerce")).to_numpy(np.float64)
        numbers = numbers[np.isfinite(numbers)]
        if len(numbers):
            sketch["quantiles"] = [float(q) for q in np.quantile(numbers, _QUANTILES)]
            sketch["std"] = float(np.std(numbers))
    elif len(values):
        text = values.astype(str)
        counts = text.value_counts()
        sketch["unique_ratio"] = float(len(counts) / len(text))
        sketch["mean_length"] = float(text.str.len().mean())
        top = counts.head(_TOP_VALUES)
        sketch["top"] = {str(k): float(v / len(text)) for k, v in top.items()}
    return sketch


def sketch_distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """0 for identical sketches; about 1 or more for unrelated ones (inf when incomparable)."""
    null_gap = abs(float(a.get("null_fraction", 0.0)) - float(b.get("null_fraction", 0.0)))
    if "quantiles" in a and "quantiles" in b:
        qa, qb = np.asarray(a["quantiles"], float), np.asarray(b["quantiles"], float)
        spread = max(float(a.get("std", 0.0)), float(b.get("std", 0.0)), qa[3] - qa[1], 1e-12)
        return float(np.max(np.abs(qa - qb)) / spread) + null_gap
    if "unique_ratio" in a and "unique_ratio" in b:
        if min(a["unique_ratio"], b["unique_ratio"]) > 0.5:  # identifiers: values never repeat
            length_gap = abs(a["mean_length"] - b["mean_length"]) / max(a["mean_length"], 1.0)
            return abs(a["unique_ratio"] - b["unique_ratio"]) + length_gap + null_gap
        keys = set(a["top"]) | set(b["top"])
        total_variation = 0.5 * sum(abs(a["top"].get(k, 0.0) - b["top"].get(k, 0.0)) for k in keys)
        return float(total_variation) + null_gap
    if "quantiles" not in a and "quantiles" not in b and "top" not in a and "top" not in b:
        return null_gap  # both columns empty
    return math.inf


@dataclass(frozen=True)
class SchemaDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    renamed: tuple[tuple[str, str, float], ...]  # (old, new, sketch distance)
    retyped: tuple[tuple[str, str, str], ...]  # (column, contract family, observed family)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.renamed or self.retyped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "renamed": [{"from": old, "to": new, "distance": d} for old, new, d in self.renamed],
            "retyped": [
                {"column": c, "contract": was, "observed": now} for c, was, now in self.retyped
            ],
        }


def diff_schema(
    contract: Mapping[str, str],
    observed: Mapping[str, str],
    *,
    observed_sketches: Mapping[str, Mapping[str, Any]],
    known_sketches: Mapping[str, Mapping[str, Any]],
    rename_tolerance: float,
) -> SchemaDiff:
    """Compare an observed schema with a contract (both ``{column: family}``)."""
    removed = [c for c in contract if c not in observed]
    added = [c for c in observed if c not in contract]
    # A column that arrives empty has no observable type, so typed → empty is no retyping
    # (nulls are the completeness check's business); empty → typed is: the contract promised
    # a column with nothing in it, and consumers built on that now get values of some type.
    retyped = [
        (c, contract[c], observed[c])
        for c in contract
        if c in observed and observed[c] != _EMPTY and contract[c] != observed[c]
    ]
    candidates: list[tuple[float, str, str]] = []
    for old in removed:
        for new in added:
            if old not in known_sketches or new not in observed_sketches:
                continue
            if _EMPTY not in (contract[old], observed[new]) and contract[old] != observed[new]:
                continue
            distance = sketch_distance(known_sketches[old], observed_sketches[new])
            if distance <= rename_tolerance:
                candidates.append((distance, old, new))
    renamed: list[tuple[str, str, float]] = []
    used: set[str] = set()
    for distance, old, new in sorted(candidates):
        if old not in used and new not in used:
            renamed.append((old, new, distance))
            used.update((old, new))
    return SchemaDiff(
        added=tuple(c for c in added if c not in used),
        removed=tuple(c for c in removed if c not in used),
        renamed=tuple(renamed),
        retyped=tuple(retyped),
    )


def build_schema_contract_checks(
    *,
    assets: Sequence[AssetTarget] | AssetTarget,
    contract: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    rename_tolerance: float = 0.25,
    history_lookback: timedelta = timedelta(days=90),
    partitions_def: dg.PartitionsDefinition | None = None,
    resource_key: str = DEFAULT_RESOURCE_KEY,
    name_prefix: str = "corrmon",
    blocking: bool = False,
) -> Sequence[dg.AssetChecksDefinition]:
    """One ``<prefix>_schema_contract`` check per asset: the value's columns against a contract.

    Args:
        assets: the assets to check (keys, ``AssetsDefinition``s or ``AssetSpec``s).
        contract: ``{column: type}`` (a type family such as ``"float"`` or a pandas dtype such as
            ``"int64"``), or a path to a JSON/YAML file holding that mapping (optionally under a
            ``columns`` key). ``None``: the first materialization the check sees is recorded in
            the corrmon store as the contract.
        rename_tolerance: largest profile distance at which a removed and an added column of the
            same type family are taken to be one column renamed (0 = identical quantiles, null
            fraction and top categories; 1 ≈ unrelated columns).
        history_lookback: how far back to look for the last stored profile of a removed column.
        partitions_def: partitioning for assets given only by key.
        resource_key: the key a :class:`~dagster_corrmon.resource.CorrmonResource` is bound to.
        name_prefix: check names are ``<name_prefix>_schema_contract``.
        blocking: make the checks blocking (an ERROR failure stops downstream assets in the run).

    Each change becomes a :attr:`SignalKind.SCHEMA_CHANGE` signal (``column_removed``,
    ``column_renamed``, ``column_retyped`` — ERROR; ``column_added`` — WARN) with the diff in its
    metadata; the check's severity is the worst change's.
    """
    targets = resolve_targets(assets, factory=FACTORY, partitions_def=partitions_def)
    prefix = check_name_prefix(name_prefix, factory=FACTORY)
    contract_columns = load_contract(contract) if contract is not None else None
    tolerance = positive_number(
        rename_tolerance, factory=FACTORY, argument="rename_tolerance", allow_zero=True
    )
    if not isinstance(history_lookback, timedelta) or history_lookback <= timedelta(0):
        raise ConfigError(f"{FACTORY}: history_lookback must be a positive timedelta")
    check_name = f"{prefix}_schema_contract"
    source = "explicit" if contract_columns is not None else "first materialization"

    def judge(frame: pd.DataFrame, tags: MaterializationTags, corrmon: CorrmonResource):
        return _judge_schema(
            frame,
            tags=tags,
            store=corrmon.get_store(),
            contract=contract_columns,
            tolerance=tolerance,
            lookback=history_lookback,
            check_name=check_name,
        )

    return check_definitions(
        frame_plan(
            target,
            name=check_name,
            description=(
                "Columns added / removed / renamed / retyped against the schema contract "
                f"({source}); ERROR on removed, renamed or retyped columns, WARN on added ones."
            ),
            kind=SignalKind.SCHEMA_CHANGE,
            judge=judge,
            resource_key=resource_key,
            blocking=blocking,
            metadata={md.CONTRACT_SOURCE: source},
        )
        for target in targets
    )


def _judge_schema(
    frame: pd.DataFrame,
    *,
    tags: MaterializationTags,
    store: Any,
    contract: Mapping[str, str] | None,
    tolerance: float,
    lookback: timedelta,
    check_name: str,
) -> CheckOutcome:
    observed = {str(column): dtype_family(_series(frame, column)) for column in frame.columns}
    sketches = {str(c): column_sketch(_series(frame, c), observed[str(c)]) for c in frame.columns}
    snapshot = {"columns": observed, "sketches": sketches}
    known_sketches: dict[str, Mapping[str, Any]] = {}
    contract_source = "explicit"
    agreed: Mapping[str, str]
    if contract is not None:
        agreed = contract
    else:
        recorded = _recorded_contract(store, tags.asset_key)
        if recorded is None:
            contract_signal = tags.signal(
                kind=SignalKind.SCHEMA_CHANGE,
                name=CONTRACT_SIGNAL,
                passed=True,
                metadata={"columns": observed, "sketches": sketches, "source": "recorded"},
            )
            return CheckOutcome(
                passed=True,
                severity=Severity.INFO,
                description=(
                    f"no contract on record for {tags.asset_key!r}: recorded this "
                    f"materialization's {len(observed)} columns as the contract"
                ),
                metadata={md.SCHEMA_DIFF: {"recorded_contract": observed}},
                signals=[
                    contract_signal,
                    tags.signal(
                        kind=SignalKind.SCHEMA_CHANGE,
                        name=observation_signal_name(check_name),
                        passed=True,
                        metadata=snapshot,
                    ),
                ],
            )
        agreed = recorded.metadata["columns"]
        known_sketches.update(recorded.metadata.get("sketches", {}))
        contract_source = f"recorded at partition {recorded.partition or '-'}"
    # Only a removed column next to an added one can be a rename, and only then are the old
    # column's values needed: the most recent observation of it identifies it best (values
    # drift over months). Reading the lookback's observations (each with every column's
    # sketch) on every materialization was most of this check's time on a long history.
    if set(agreed) - set(observed) and set(observed) - set(agreed):
        previous = store.read_signals(
            asset_key=tags.asset_key,
            name=observation_signal_name(check_name),
            kind=SignalKind.SCHEMA_CHANGE,
            start=tags.event_time - lookback,
            end=tags.event_time,
        )
        for signal in previous:
            known_sketches.update(signal.metadata.get("sketches", {}))
    diff = diff_schema(
        agreed,
        observed,
        observed_sketches=sketches,
        known_sketches=known_sketches,
        rename_tolerance=tolerance,
    )
    signals: list[Signal] = []
    failures: list[dict[str, Any]] = []

    def change(name: str, column: str, severity: Severity, detail: dict[str, Any]) -> None:
        failures.append({"change": name, "column": column, "severity": severity.value, **detail})
        signals.append(
            tags.signal(
                kind=SignalKind.SCHEMA_CHANGE,
                name=name,
                passed=False,
                severity=severity,
                column=column,
                metadata={"change": name, **detail, "diff": diff.to_dict()},
            )
        )

    for column in diff.removed:
        change(COLUMN_REMOVED, column, Severity.ERROR, {"contract_type": agreed[column]})
    for old, new, distance in diff.renamed:
        change(
            COLUMN_RENAMED,
            old,
            Severity.ERROR,
            {"renamed_to": new, "type": observed[new], "profile_distance": distance},
        )
    for column, was, now in diff.retyped:
        widened = was == "integer" and now == "float"
        filled = was == _EMPTY
        change(
            COLUMN_RETYPED,
            column,
            Severity.WARN if widened or filled else Severity.ERROR,
            {
                "contract_type": was,
                "observed_type": now,
                "reason": (
                    "integer column arrived as float (pandas does this when a null appears)"
                    if widened
                    else f"column was empty in the contract and now holds {now} values"
                    if filled
                    else f"type family changed from {was} to {now}"
                ),
            },
        )
    for column in diff.added:
        change(COLUMN_ADDED, column, Severity.WARN, {"observed_type": observed[column]})
    metadata: dict[str, Any] = {
        md.SCHEMA_DIFF: diff.to_dict(),
        md.COLUMNS_ADDED: len(diff.added),
        md.COLUMNS_REMOVED: len(diff.removed),
        md.COLUMNS_RENAMED: len(diff.renamed),
        md.COLUMNS_RETYPED: len(diff.retyped),
        md.CONTRACT_SOURCE: contract_source,
    }
    # The check's own summary signal carries this materialization's sketches, so a later rename
    # can be recognised against the most recent observation of the old column.
    signals.append(
        tags.signal(
            kind=SignalKind.SCHEMA_CHANGE,
            name=observation_signal_name(check_name),
            passed=not failures,
            severity=worst(_SEVERITY_OF_CHANGE.get(f["change"], Severity.WARN) for f in failures),
            metadata=snapshot,
        )
    )
    if not failures:
        return CheckOutcome(
            passed=True,
            severity=Severity.INFO,
            description=f"{len(observed)} columns match the contract ({contract_source})",
            metadata=metadata,
            signals=signals,
        )
    severity = worst(Severity(f["severity"]) for f in failures)
    lines = [_describe(f) for f in failures]
    return CheckOutcome(
        passed=False,
        severity=severity,
        description=f"schema of {tags.asset_key!r} breaks its contract: " + "; ".join(lines),
        metadata={**metadata, md.FAILURES: failures},
        signals=signals,
        failed_count=len(failures),
    )


def _series(frame: pd.DataFrame, column: Any) -> pd.Series:
    """One column; a duplicated name yields its first occurrence."""
    values = frame[column]
    return values.iloc[:, 0] if isinstance(values, pd.DataFrame) else values


def observation_signal_name(check_name: str) -> str:
    """The signal that stores each materialization's observed columns and sketches."""
    return f"{check_name}_observation"


def _describe(failure: Mapping[str, Any]) -> str:
    column = failure["column"]
    if failure["change"] == COLUMN_REMOVED:
        return f"column {column!r} removed"
    if failure["change"] == COLUMN_RENAMED:
        return f"column {column!r} renamed to {failure['renamed_to']!r}"
    if failure["change"] == COLUMN_RETYPED:
        return f"column {column!r} {failure['contract_type']} → {failure['observed_type']}"
    return f"column {column!r} added ({failure['observed_type']})"


def _recorded_contract(store: Any, asset_key: str) -> Signal | None:
    recorded = store.read_signals(
        asset_key=asset_key, name=CONTRACT_SIGNAL, kind=SignalKind.SCHEMA_CHANGE
    )
    if not recorded:
        return None
    # Concurrent first partitions may each record one: the earliest observed wins, always.
    return min(recorded, key=lambda s: (s.observed_at or s.event_time, s.event_time))
