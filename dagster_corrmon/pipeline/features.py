"""Joining feeds and deriving features: vectorised pandas, one pass per partition.

Both steps report what they saw (join match rates, duplicate keys dropped, values that were not
numbers, columns that were missing) instead of hiding it: those counts become asset metadata,
which is how a delayed weather batch shows up as a collapsed join match rate.
"""

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from dagster_corrmon.errors import InputDataError
from dagster_corrmon.pipeline.spec import (
    DATETIME_FUNCTIONS,
    PipelineSpec,
    expression_columns,
    parse_expression,
)

#: ``joined.attrs`` key holding ``{joined column: (feed, feed column)}``; pandas keeps ``attrs``
#: through copies and pickling, so the features step can report lineage down to the raw feeds.
ORIGINS_ATTR = "corrmon_column_origins"
_ALIGN_COLUMN = "__corrmon_align__"
_MATCH_COLUMN = "__corrmon_match__"
_FLOOR_FREQ = {"minute": "min", "hour": "h", "day": "D"}

ColumnOrigin = tuple[str, str]  # (feed name, column name in that feed)


class FrameNote(dict[str, Any]):
    """A read-only ``DataFrame.attrs`` value that copies as itself.

    pandas deep-copies a frame's ``attrs`` into the result of every operation, a column read
    included: with a 25-column lineage dict that is ~0.1 ms per operation, a dozen times the
    operation itself, and checks read every column. Nested lists become tuples and every
    mutating method raises, so a note shared between frames cannot change under one of them.
    A ``dict`` subclass, so whatever serializes ``attrs`` as JSON (pandas' Parquet writer,
    ``pyarrow.Table.from_pandas``) still can; it pickles as a plain value.
    """

    __slots__ = ()

    def __init__(self, items: Mapping[str, Any]) -> None:
        super().__init__({str(k): _frozen(v) for k, v in items.items()})

    def _read_only(self, *_args: Any, **_kwargs: Any) -> Any:
        raise TypeError("a FrameNote is read-only; build a new one")

    __setitem__ = __delitem__ = __ior__ = _read_only  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> "FrameNote":
        return self

    def __copy__(self) -> "FrameNote":
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrameNote, (dict(self),))


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return FrameNote(value)
    return value


def column_of(frame: pd.DataFrame, name: str) -> pd.Series:
    """One column as a Series (typed: pandas' own annotations say Series | DataFrame)."""
    return cast(pd.Series, frame[name])


def numbers(values: Any) -> np.ndarray:
    """Values as float64, anything that is not a number becoming NaN."""
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=float)


@dataclass(frozen=True)
class JoinReport:
    """What happened in a join: per joined feed, the share of rows that found a match."""

    rows: int
    match_rates: Mapping[str, float] = field(default_factory=dict)
    duplicate_keys_dropped: Mapping[str, int] = field(default_factory=dict)
    duplicate_row_keys: int = 0
    column_origins: Mapping[str, ColumnOrigin] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureReport:
    """Columns that were absent, and values that were not numbers, per feature."""

    missing_columns: tuple[str, ...] = ()
    coerced_to_null: Mapping[str, int] = field(default_factory=dict)


def _require_columns(frame: pd.DataFrame, columns: list[str], *, where: str, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputDataError(
            f"{where}: {what} {', '.join(map(repr, missing))} missing "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )


def join_feeds(
    spec: PipelineSpec, base: pd.DataFrame, others: Mapping[str, pd.DataFrame]
) -> tuple[pd.DataFrame, JoinReport]:
    """Join the spec's feeds onto the base batch; the right side of each join is made unique."""
    base_name = spec.base_source.name
    origins: dict[str, ColumnOrigin] = {str(c): (base_name, str(c)) for c in base.columns}
    joined = base
    match_rates: dict[str, float] = {}
    dropped: dict[str, int] = {}
    for step in spec.joins.steps if spec.joins is not None else []:
        where = f"joining {step.source!r} onto the table"
        right = others[step.source]
        _require_columns(joined, step.keys, where=where, what="left join keys")
        _require_columns(
            right, step.keys, where=f"{where} (feed {step.source!r})", what="join keys"
        )
        left_on, right_on = list(step.keys), list(step.keys)
        left, right = joined, right.copy()
        if step.align is not None:
            aligned, freq = step.align.column, _FLOOR_FREQ[step.align.floor]
            position = step.keys.index(aligned)
            left = left.assign(**{_ALIGN_COLUMN: _floor(column_of(left, aligned), freq, where)})
            right[aligned] = _floor(column_of(right, aligned), freq, where)
            right = right.rename(columns={aligned: _ALIGN_COLUMN})
            left_on[position] = right_on[position] = _ALIGN_COLUMN
        duplicated = right.duplicated(right_on, keep="first")
        dropped[step.source] = int(duplicated.sum())
        if dropped[step.source]:
            right = right.loc[~duplicated.to_numpy()]
        clashes: dict[str, str] = {
            str(c): f"{c}_{step.source}"
            for c in right.columns
            if c in left.columns and c not in right_on
        }
        right = right.rename(columns=clashes)
        for name in right.columns:
            if name not in right_on:
                original = next((o for o, n in clashes.items() if n == name), name)
                origins[str(name)] = (step.source, str(original))
        try:
            merged = left.merge(
                right, how=step.how, left_on=left_on, right_on=right_on, indicator=_MATCH_COLUMN
            )
        except (ValueError, TypeError) as error:
            raise InputDataError(f"{where} on {step.keys}: {error}") from None
        match_rates[step.source] = (
            float((merged[_MATCH_COLUMN] == "both").sum()) / len(left) if len(left) else 1.0
        )
        joined = merged.drop(columns=[_MATCH_COLUMN, _ALIGN_COLUMN], errors="ignore")
    joined = joined.reset_index(drop=True)
    key = [c for c in spec.row_key if c in joined.columns]
    duplicate_keys = int(joined.duplicated(key).sum()) if key and len(joined) else 0
    origins = {c: o for c, o in origins.items() if c in joined.columns}
    joined.attrs[ORIGINS_ATTR] = FrameNote(origins)
    report = JoinReport(
        rows=len(joined),
        match_rates=match_rates,
        duplicate_keys_dropped=dropped,
        duplicate_row_keys=duplicate_keys,
        column_origins=origins,
    )
    return joined, report


def _floor(values: pd.Series, freq: str, where: str) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise InputDataError(f"{where}: aligned column {values.name!r} is {values.dtype}, not time")
    return values.dt.floor(freq)


def as_category_strings(values: pd.Series) -> pd.Series:
    """Categorical values as strings, stable across batches (``3`` and ``3.0`` are both "3")."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        out = values.astype(object)
        present = out.notna().to_numpy()
        out[present] = out[present].astype(str)
        return out.where(present, None)
    numbers = values.astype(float)
    finite = numbers.dropna()
    if len(finite) and bool((finite == np.floor(finite)).all()):
        text = numbers.round().astype("Int64").astype(str)
    else:
        text = numbers.astype(str)
    return text.astype(object).where(numbers.notna().to_numpy(), None)


def evaluate_expression(expression: str, frame: pd.DataFrame, *, timezone: str) -> np.ndarray:
    """Evaluate a derived-feature expression on a frame, as float64 (comparisons give 0/1)."""
    tree = parse_expression(expression)
    _require_columns(
        frame, expression_columns(expression), where=f"expression {expression!r}", what="columns"
    )
    with np.errstate(all="ignore"):
        result = _Evaluator(frame, timezone).visit(tree.body)
    values = np.broadcast_to(np.asarray(result, dtype=float), (len(frame),)).copy()
    values[~np.isfinite(values)] = np.nan
    return values


_BINARY: Mapping[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
}
_COMPARE: Mapping[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
_FUNCTIONS: Mapping[str, Callable[..., np.ndarray]] = {
    "abs": np.abs,
    "log": np.log,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "floor": np.floor,
    "ceil": np.ceil,
    "clip": np.clip,
    "minimum": np.fmin,
    "maximum": np.fmax,
    "isnull": lambda x: np.isnan(x).astype(float),
}


class _Evaluator:
    """Walks an already-whitelisted expression tree with numpy; NaN propagates like SQL NULL."""

    def __init__(self, frame: pd.DataFrame, timezone: str) -> None:
        self.frame = frame
        self.timezone = timezone

    def visit(self, node: ast.AST) -> np.ndarray:
        if isinstance(node, ast.Constant):
            return np.asarray(float(cast(float, node.value)))
        if isinstance(node, ast.Name):
            return numbers(self.frame[node.id])
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self.visit(node.left), self.visit(node.right))
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.Not):
                return _nan_where(operand, (operand == 0).astype(float))
            return operand
        if isinstance(node, ast.Compare):
            result: np.ndarray | None = None
            left = self.visit(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.visit(comparator)
                step = _nan_where(left + right, _COMPARE[type(op)](left, right).astype(float))
                result = step if result is None else np.fmin(result, step)
                left = right
            assert result is not None
            return result
        if isinstance(node, ast.BoolOp):
            values = [self.visit(v) != 0 for v in node.values]
            combined = np.logical_and.reduce(values) if isinstance(node.op, ast.And) else None
            if combined is None:
                combined = np.logical_or.reduce(values)
            return combined.astype(float)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in DATETIME_FUNCTIONS:
                return self._datetime_part(name, node.args[0])
            return _FUNCTIONS[name](*(self.visit(a) for a in node.args))
        raise InputDataError(f"unsupported expression node {type(node).__name__}")

    def _datetime_part(self, name: str, argument: ast.AST) -> np.ndarray:
        assert isinstance(argument, ast.Name)
        values = column_of(self.frame, argument.id)
        if not pd.api.types.is_datetime64_any_dtype(values):
            raise InputDataError(f"{name}({argument.id}): column is {values.dtype}, not datetime")
        local = values.dt.tz_convert(self.timezone) if values.dt.tz is not None else values
        parts = {
            "hour": lambda: local.dt.hour,
            "dayofweek": lambda: local.dt.dayofweek,
            "day": lambda: local.dt.day,
            "month": lambda: local.dt.month,
            "dayofyear": lambda: local.dt.dayofyear,
            "weekofyear": lambda: local.dt.isocalendar().week,
        }
        return numbers(parts[name]())


def _nan_where(source: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(source), np.nan, values)


def build_features(
    spec: PipelineSpec, joined: pd.DataFrame, *, timezone: str
) -> tuple[pd.DataFrame, FeatureReport]:
    """The model's input table: row key, numeric (float64), derived, categorical (str/None)."""
    features = spec.features
    _require_columns(joined, spec.row_key, where="building features", what="row key columns")
    wanted = [*features.numeric, *features.categorical]
    for expression in features.derived.values():
        wanted += expression_columns(expression)
    missing = tuple(dict.fromkeys(c for c in wanted if c not in joined.columns))
    if missing and features.missing_columns == "error":
        origins = spec.column_origins() or {}
        detail = ", ".join(f"{c!r} (from {origins.get(c, 'an unknown feed')})" for c in missing)
        raise InputDataError(f"building features: columns {detail} are not in the joined table")
    source = joined.assign(**{c: np.nan for c in missing}) if missing else joined
    columns: dict[str, pd.Series | np.ndarray] = {k: column_of(source, k) for k in spec.row_key}
    coerced: dict[str, int] = {}
    for name in features.numeric:
        raw = column_of(source, name)
        values = numbers(raw)
        coerced[name] = int((np.isnan(values) & raw.notna().to_numpy()).sum())
        columns[name] = values
    for name, expression in features.derived.items():
        columns[name] = evaluate_expression(expression, source, timezone=timezone)
    for name in features.categorical:
        columns[name] = as_category_strings(column_of(source, name))
    frame = pd.DataFrame(columns, index=joined.index).reset_index(drop=True)
    report = FeatureReport(
        missing_columns=missing, coerced_to_null={k: v for k, v in coerced.items() if v}
    )
    return frame, report


def joined_column_origins(spec: PipelineSpec, joined: pd.DataFrame) -> dict[str, ColumnOrigin]:
    """``{joined column: (feed, feed column)}``: as :func:`join_feeds` recorded it, else the
    spec's declared columns."""
    recorded = joined.attrs.get(ORIGINS_ATTR)
    if isinstance(recorded, Mapping) and recorded:
        return {str(c): (str(o[0]), str(o[1])) for c, o in recorded.items()}
    return {c: (s, c) for c, s in (spec.column_origins() or {}).items()}


def feature_inputs(spec: PipelineSpec) -> dict[str, list[str]]:
    """``{feature or row-key column: [joined columns it is computed from]}``."""
    inputs: dict[str, list[str]] = {key: [key] for key in spec.row_key}
    for name in [*spec.features.numeric, *spec.features.categorical]:
        inputs[name] = [name]
    for name, expression in spec.features.derived.items():
        inputs[name] = expression_columns(expression)
    return inputs


def feature_sources(
    spec: PipelineSpec, origins: Mapping[str, ColumnOrigin]
) -> dict[str, list[ColumnOrigin]]:
    """``{feature: [(feed, column), ...]}`` — which raw feed columns each feature depends on."""
    return {
        feature: [origins[c] for c in columns if c in origins]
        for feature, columns in feature_inputs(spec).items()
        if feature in spec.features.columns
    }
