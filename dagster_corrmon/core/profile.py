"""Mergeable per-batch column profiles, computed once for a reference and stored as JSON.

A :class:`DatasetProfile` summarises each column of a table in a few kilobytes, so drift can be
scored against it without keeping (or re-reading) the raw reference — the thing Evidently users ask
for (evidently#506). Profiles of batches that share the reference's bin edges and categories
*merge* exactly, so a large reference can be profiled partition by partition (in parallel, by
Dagster's executors) and summed::

    reference = build_reference_profile(first_partition)          # fixes edges and categories
    for partition in others:
        reference = merge_profiles(reference, profile_batch(partition, like=reference))

Column kinds (stable identifiers, stored in JSON):

* ``"numeric"`` — int/float (nullable too). Count, nulls (NaN/None), infinite values, min, max,
  mean and M2 (sum of squared deviations, merged with Chan et al.'s parallel formula), a histogram
  on the reference's quantile edges with open outer bins ``(-inf, e_1)`` … ``[e_k, +inf)``, and the
  exact distinct values with their counts while there are at most ``max_exact_values`` of them
  (so low-cardinality columns — and every reference of ≤ 1000 rows — are scored exactly).
* ``"datetime"`` — profiled as numbers: seconds since the Unix epoch (UTC).
* ``"categorical"`` — strings/categories (values are compared as ``str``): counts per category
  fixed by the reference (its ``max_categories`` most frequent values) plus an ``other`` bucket,
  whose values are filed in a Bloom filter (:class:`CategoryTail`) so that drift tests can tell
  them from values the reference never saw.
* ``"boolean"`` — a categorical profile with the fixed categories ``"False"`` and ``"True"``.

Infinite values are kept out of the moments and the histogram (like Evidently, which drops them
before testing) and counted separately.
"""

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from dagster_corrmon.errors import ConfigError, InputDataError, InsufficientDataError

PROFILE_SCHEMA = "corrmon.profile"
PROFILE_SCHEMA_VERSION = 1

DEFAULT_BINS = 1000
"""Quantile bins of a numeric reference (plus a few tail quantiles). Many bins keep the scores
computed from a stored profile tight: the KS statistic is read at the edges, and the
Wasserstein error bound of ``core.drift`` shrinks with the bin widths."""
DEFAULT_MAX_CATEGORIES = 1000
DEFAULT_MAX_EXACT_VALUES = 1000
"""A numeric column with at most this many distinct values keeps them exactly. 1000 is Evidently's
small-reference limit, so a reference small enough for KS is always stored exactly."""
MIN_EXACT_VALUES = 20
"""Evidently bins numeric data with > 20 distinct values differently; the cap must resolve that."""

NumericKind = Literal["numeric", "datetime"]
CategoricalKind = Literal["categorical", "boolean"]
NUMERIC_KINDS: tuple[str, ...] = ("numeric", "datetime")
CATEGORICAL_KINDS: tuple[str, ...] = ("categorical", "boolean")
_BOOLEAN_CATEGORIES = ("False", "True")
_EMPTY = "empty"  # a column with no non-null value: compatible with any kind
_KIND_SAMPLE = 10_000
TAIL_BITS_PER_CATEGORY = 10
"""Bloom-filter bits per category lumped into ``other`` (≈ 1 % false positives)."""
TAIL_MAX_BITS = 8 * 2**20
"""At most 1 MiB of filter per column: past ~840 k lumped categories false positives grow, which
widens the error bound of the drift tests but never falsifies it."""
TAIL_MAX_HASHES = 16


# --------------------------------------------------------------------------------------- kinds


def column_kind(series: pd.Series, *, column: str) -> str:
    """The profile kind of a column from its dtype (no pass over typed data).

    Object columns are classified from their first non-null values (``"empty"`` when they hold
    none). Raises :class:`InputDataError` naming the column for dtypes that cannot be profiled
    (complex, timedelta, period, interval, objects that are neither scalars nor strings).
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_complex_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise InputDataError(f"column {column!r} has unsupported dtype {dtype}")
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        # A sample is enough to tell strings from numbers and costs nothing at 1M rows; a
        # column that starts empty is inferred from all its values.
        inferred = pd.api.types.infer_dtype(series.iloc[:_KIND_SAMPLE], skipna=True)
        if inferred == "empty" and len(series) > _KIND_SAMPLE:
            inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred == "empty":
            return _EMPTY
        if inferred in ("string", "mixed-integer", "categorical"):
            return "categorical"
        if inferred == "boolean":
            return "boolean"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "numeric"
        if inferred in ("datetime", "datetime64", "date"):
            return "datetime"
        raise InputDataError(
            f"column {column!r} holds values of type {inferred!r} that cannot be profiled "
            "(expected numbers, strings, booleans or datetimes)"
        )
    raise InputDataError(f"column {column!r} has unsupported dtype {dtype}")


def compatible_kind(series: pd.Series, reference_kind: str, *, column: str, where: str) -> str:
    """The kind of a batch column checked against its reference's kind.

    Returns ``"empty"`` for a column without any non-null value (a null spike is data, whatever
    dtype the reader gave it); raises :class:`InputDataError` when the kind changed.
    """
    kind = column_kind(series, column=column)
    if kind in (_EMPTY, reference_kind):
        return kind
    if not series.notna().any():
        return _EMPTY
    raise InputDataError(
        f"column {column!r} is {reference_kind} in the reference but {kind} in the {where} "
        "(incompatible dtypes)"
    )


def is_integer_column(series: pd.Series) -> bool:
    """Whether the column's dtype is an integer type (Evidently treats those specially)."""
    return pd.api.types.is_integer_dtype(series.dtype)


def numeric_values(series: pd.Series, *, kind: str) -> tuple[np.ndarray, int, int]:
    """``(finite float64 values, nulls, infinite)`` of a numeric or datetime column.

    Datetimes become seconds since the Unix epoch (aware ones are converted to UTC first).
    The returned array may share memory with the series: callers must not write to it.
    """
    if kind == "datetime" or pd.api.types.is_datetime64_any_dtype(series.dtype):
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            # Already typed: convert directly (pd.to_datetime would first sample the values
            # one Python object at a time to decide on caching).
            naive = series.dt.tz_convert("UTC").dt.tz_localize(None)
        elif isinstance(series.dtype, np.dtype) and series.dtype.kind == "M":
            naive = series
        else:
            naive = pd.to_datetime(series, utc=True).dt.tz_localize(None)
        nanoseconds = naive.to_numpy(dtype="datetime64[ns]")
        missing = np.isnat(nanoseconds)
        values = nanoseconds.view("int64").astype(np.float64) / 1e9
        return values[~missing], int(missing.sum()), 0
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiu":
        values = series.to_numpy(dtype=np.float64, copy=False)
    elif pd.api.types.is_object_dtype(series.dtype):
        numbers = cast(pd.Series, pd.to_numeric(series))
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    else:  # pandas nullable Int64/Float64 and friends
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    if finite.all():
        return values, 0, 0
    nulls = int(np.isnan(values).sum())
    finite_values = values[finite]
    return finite_values, nulls, len(values) - len(finite_values) - nulls


def category_counts(series: pd.Series) -> dict[str, int]:
    """Counts of the non-null values of a column, keyed by ``str(value)``."""
    counts = series.value_counts(dropna=True, sort=False)
    result: dict[str, int] = {}
    for value, count in zip(counts.index, counts.to_numpy(), strict=True):
        if count:
            key = str(value)  # 1 and "1" in one object column count together
            result[key] = result.get(key, 0) + int(count)
    return result


def column_series(frame: pd.DataFrame, name: str) -> pd.Series:
    """One column as a Series; a name that appears twice is an :class:`InputDataError`."""
    column = frame[name]
    if isinstance(column, pd.DataFrame):
        raise InputDataError(f"column {name!r} appears {column.shape[1]} times in the table")
    return column


def sorted_distinct(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their counts of an ascending array, in one linear pass."""
    if len(sorted_values) == 0:
        return sorted_values[:0], np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    counts = np.diff(np.r_[starts, len(sorted_values)])
    return sorted_values[starts], counts.astype(np.int64)


def histogram_on_edges(
    sorted_values: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Counts and offsets of an ascending array in bins ``(-inf, e_1), [e_1, e_2), …, [e_k, inf)``.

    The *offset* of a bin is the sum of the distances of its values from the bin's finite
    anchor edge: ``Σ (e_1 − x)`` for the first bin, ``Σ (x − e_j)`` for bin ``[e_j, …)``.
    Offsets are additive (they merge like counts) and make the integral of the CDF over every
    bin exact, which is what the binned Wasserstein distance of ``core.drift`` needs.

    Why sort-based: on the AVX-512 machines we benchmark on, ``np.sort`` of 1M floats takes ~8 ms
    while ``np.searchsorted(edges, values)`` into 1000 edges takes ~50 ms. Sorting the batch once,
    then searching the few edges in it, is the fastest vectorised way to bin — and the sorted batch
    also yields min, max and the distinct values for free.
    """
    below = np.searchsorted(sorted_values, edges, side="left")
    bounds = np.r_[0, below, len(sorted_values)]
    counts = np.diff(bounds).astype(np.int64)
    if len(sorted_values) == 0:
        return counts, np.zeros(len(counts), dtype=np.float64)
    # Sums from one cumulative sum, shifted by the median to keep the rounding error small.
    shift = float(sorted_values[len(sorted_values) // 2])
    cumulative = np.r_[0.0, np.cumsum(sorted_values - shift)]
    sums = np.diff(cumulative[bounds])  # Σ (x − shift) per bin
    anchors = np.r_[edges[:1], edges]
    offsets = sums - counts * (anchors - shift)  # Σ (x − anchor) per bin
    offsets[0] = -offsets[0]  # the first bin lies below its anchor
    return counts, np.maximum(offsets, 0.0)


# ------------------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class NumericColumnProfile:
    """Summary of one numeric (or datetime, as epoch seconds) column of one batch."""

    name: str
    kind: str
    integer: bool  # the dtype was an integer type (Evidently infers column types from it)
    rows: int
    nulls: int
    infinite: int
    count: int  # finite values: what the moments, the histogram and the tests see
    minimum: float | None
    maximum: float | None
    mean: float
    m2: float  # sum of squared deviations from the mean
    edges: tuple[float, ...]  # strictly increasing interior edges of the reference
    histogram: tuple[int, ...]  # len(edges) + 1 counts; outer bins open
    offsets: tuple[float, ...]  # per bin, Σ distance from its anchor edge (histogram_on_edges)
    max_exact_values: int
    exact_values: tuple[float, ...] | None  # ascending distinct values, None past the cap
    exact_counts: tuple[int, ...] | None

    @property
    def distinct(self) -> int | None:
        """Number of distinct finite values, or None when it exceeds ``max_exact_values``."""
        return None if self.exact_values is None else len(self.exact_values)

    @property
    def variance(self) -> float:
        """Population variance (ddof=0), like ``np.std`` which Evidently norms Wasserstein by."""
        return self.m2 / self.count if self.count else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    @property
    def null_fraction(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "integer": self.integer,
            "rows": self.rows,
            "nulls": self.nulls,
            "infinite": self.infinite,
            "count": self.count,
            "min": self.minimum,
            "max": self.maximum,
            "mean": self.mean,
            "m2": self.m2,
            "edges": list(self.edges),
            "histogram": list(self.histogram),
            "offsets": list(self.offsets),
            "max_exact_values": self.max_exact_values,
            "exact_values": None if self.exact_values is None else list(self.exact_values),
            "exact_counts": None if self.exact_counts is None else list(self.exact_counts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NumericColumnProfile":
        exact_values = data["exact_values"]
        exact_counts = data["exact_counts"]
        profile = cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            integer=bool(data["integer"]),
            rows=int(data["rows"]),
            nulls=int(data["nulls"]),
            infinite=int(data["infinite"]),
            count=int(data["count"]),
            minimum=None if data["min"] is None else float(data["min"]),
            maximum=None if data["max"] is None else float(data["max"]),
            mean=float(data["mean"]),
            m2=float(data["m2"]),
            edges=tuple(float(edge) for edge in data["edges"]),
            histogram=tuple(int(count) for count in data["histogram"]),
            offsets=tuple(float(offset) for offset in data["offsets"]),
            max_exact_values=int(data["max_exact_values"]),
            exact_values=None if exact_values is None else tuple(float(v) for v in exact_values),
            exact_counts=None if exact_counts is None else tuple(int(c) for c in exact_counts),
        )
        if not profile.edges or not (
            len(profile.histogram) == len(profile.offsets) == len(profile.edges) + 1
        ):
            raise InputDataError(
                f"profile of column {profile.name!r} is corrupt: {len(profile.histogram)} "
                f"histogram counts for {len(profile.edges)} edges"
            )
        _validate_numeric(profile)
        return profile


@dataclass(frozen=True)
class CategoricalColumnProfile:
    """Summary of one categorical (or boolean) column of one batch."""

    name: str
    kind: str
    rows: int
    nulls: int
    count: int  # non-null values
    categories: tuple[str, ...]  # fixed by the reference, most frequent first
    counts: tuple[int, ...]
    other: int  # non-null values outside ``categories``
    max_categories: int
    tail: "CategoryTail | None" = None  # which values ``other`` holds (None: none, or unknown)

    @property
    def null_fraction(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def distinct(self) -> int | None:
        """Distinct non-null values, or None when some fell into ``other`` (count unknown)."""
        return None if self.other else sum(1 for count in self.counts if count)

    def category_counts(self) -> dict[str, int]:
        return {cat: count for cat, count in zip(self.categories, self.counts, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "nulls": self.nulls,
            "count": self.count,
            "categories": list(self.categories),
            "counts": list(self.counts),
            "other": self.other,
            "max_categories": self.max_categories,
            **({} if self.tail is None else {"tail": self.tail.to_dict()}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CategoricalColumnProfile":
        profile = cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            rows=int(data["rows"]),
            nulls=int(data["nulls"]),
            count=int(data["count"]),
            categories=tuple(str(cat) for cat in data["categories"]),
            counts=tuple(int(count) for count in data["counts"]),
            other=int(data["other"]),
            max_categories=int(data["max_categories"]),
            tail=None
            if data.get("tail") is None
            else CategoryTail.from_dict(str(data["name"]), data["tail"]),
        )
        if len(profile.categories) != len(profile.counts):
            raise InputDataError(
                f"profile of column {profile.name!r} is corrupt: {len(profile.counts)} counts "
                f"for {len(profile.categories)} categories"
            )
        _validate_categorical(profile)
        return profile


@dataclass(frozen=True)
class CategoryTail:
    """Which categories a profile lumped into ``other``: a Bloom filter of their names.

    A capped categorical profile keeps the ``max_categories`` most frequent values and only the
    total count of the rest. Without more, a current category outside the kept ones could be one
    of those rare reference values or a value the reference never saw — and the two weigh very
    differently (a never-seen value has reference share 0: Jensen–Shannon counts its whole mass,
    χ² is infinite). The filter answers "certainly never seen" for most new values (a Bloom filter
    has no false negatives; about 1 % false positives at :data:`TAIL_BITS_PER_CATEGORY` bits per
    category), so the drift tests count those as new mass and treat only the rest as possibly
    part of the lumped tail, with a rigorous error bound (see ``core.drift``).

    The reference fixes the geometry (``bits``, ``hashes``); a batch profiled like it files its
    own lumped values in a filter of that geometry, and filters merge by OR — so the filter of a
    merged profile holds every value its ``other`` counts. Hashes are BLAKE2b of the UTF-8 name
    (stable across processes and versions; Python's own ``hash`` is salted per process).
    """

    bits: int
    hashes: int
    filter: bytes

    @classmethod
    def sized_for(cls, distinct: int) -> "CategoryTail":
        """An empty filter for about ``distinct`` categories."""
        bits = min(max(64, TAIL_BITS_PER_CATEGORY * distinct), TAIL_MAX_BITS)
        bits = -(-bits // 8) * 8
        hashes = max(1, min(TAIL_MAX_HASHES, round(bits / max(distinct, 1) * math.log(2))))
        return cls(bits, hashes, b"").cleared()

    def cleared(self) -> "CategoryTail":
        """An empty filter of the same geometry."""
        return replace(self, filter=bytes(self.bits // 8))

    def with_categories(self, categories: Sequence[str]) -> "CategoryTail":
        """This filter with ``categories`` added (same geometry)."""
        array = self._bit_array()
        if len(categories):
            array[_bloom_positions(categories, self.bits, self.hashes).ravel()] = True
        return replace(self, filter=np.packbits(array, bitorder="little").tobytes())

    def union(self, other: "CategoryTail") -> "CategoryTail":
        """The filter of both sets; both must share one geometry (one reference)."""
        if (self.bits, self.hashes) != (other.bits, other.hashes):
            raise ValueError("category filters of different geometry")
        merged = np.bitwise_or(
            np.frombuffer(self.filter, dtype=np.uint8), np.frombuffer(other.filter, dtype=np.uint8)
        )
        return replace(self, filter=merged.tobytes())

    def might_contain(self, categories: Sequence[str]) -> np.ndarray:
        """Per category: False when it is certainly not in the tail, True when it may be."""
        if not len(categories):
            return np.zeros(0, dtype=bool)
        positions = _bloom_positions(categories, self.bits, self.hashes)
        return np.asarray(self._bit_array()[positions].all(axis=1), dtype=bool)

    def _bit_array(self) -> np.ndarray:
        packed = np.frombuffer(self.filter, dtype=np.uint8)
        return np.unpackbits(packed, bitorder="little", count=self.bits).astype(bool)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "hashes": self.hashes,
            "filter": base64.b64encode(self.filter).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, column: str, data: Mapping[str, Any]) -> "CategoryTail":
        try:
            tail = cls(
                bits=int(data["bits"]),
                hashes=int(data["hashes"]),
                filter=base64.b64decode(str(data["filter"]), validate=True),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as error:
            raise _corrupt(column, "tail", f"cannot be read: {error!r}") from error
        if (
            tail.bits <= 0
            or tail.bits % 8
            or not 1 <= tail.hashes <= TAIL_MAX_HASHES
            or len(tail.filter) * 8 != tail.bits
        ):
            raise _corrupt(
                column,
                "tail",
                f"holds {len(tail.filter) * 8} filter bits for bits={tail.bits}, "
                f"hashes={tail.hashes}",
            )
        return tail


def _bloom_positions(categories: Sequence[str], bits: int, hashes: int) -> np.ndarray:
    """``(len(categories), hashes)`` bit positions by double hashing (Kirsch–Mitzenmacher)."""
    digests = b"".join(
        hashlib.blake2b(category.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        for category in categories
    )
    pairs = np.frombuffer(digests, dtype="<u8").reshape(-1, 2)
    steps = np.arange(hashes, dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        combined = pairs[:, :1] + steps[None, :] * (pairs[:, 1:] | np.uint64(1))
    return (combined % np.uint64(bits)).astype(np.int64)


ColumnProfile = NumericColumnProfile | CategoricalColumnProfile


def _corrupt(column: str, field_name: str, problem: str) -> InputDataError:
    return InputDataError(
        f"profile of column {column!r} is corrupt: field {field_name!r} {problem}"
    )


def _check_counts(column: str, field_name: str, counts: Sequence[int], total: int | None) -> None:
    if any(count < 0 for count in counts):
        raise _corrupt(column, field_name, "holds a negative count")
    if total is not None and sum(counts) != total:
        raise _corrupt(column, field_name, f"sums to {sum(counts)}, not the count {total}")


def _check_non_negative(column: str, fields: Mapping[str, int]) -> None:
    for field_name, value in fields.items():
        _check_counts(column, field_name, [value], None)


def _check_ascending(column: str, field_name: str, values: Sequence[float]) -> None:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise _corrupt(column, field_name, "holds a NaN or infinite value")
    if np.any(np.diff(array) <= 0):
        raise _corrupt(column, field_name, "is not strictly increasing")


def _validate_numeric(profile: NumericColumnProfile) -> None:
    """Refuse a profile whose numbers cannot describe any data (a hand edit, a bad merge).

    Drift tests trust these fields: a negative count or reversed edges would give a verdict
    from nonsense, a NaN would print as NaN.
    """
    name = profile.name
    _check_non_negative(
        name,
        {
            "rows": profile.rows,
            "nulls": profile.nulls,
            "infinite": profile.infinite,
            "count": profile.count,
        },
    )
    if profile.nulls + profile.infinite + profile.count != profile.rows:
        raise _corrupt(name, "rows", "is not nulls + infinite + count")
    _check_counts(name, "histogram", profile.histogram, profile.count)
    _check_ascending(name, "edges", profile.edges)
    offsets = np.asarray(profile.offsets, dtype=np.float64)
    if not (np.isfinite(offsets).all() and (offsets >= 0).all()):
        raise _corrupt(name, "offsets", "holds a negative, NaN or infinite value")
    for field_name, value in (("mean", profile.mean), ("m2", profile.m2)):
        if not math.isfinite(value):
            raise _corrupt(name, field_name, "is not a finite number")
    if profile.m2 < 0:
        raise _corrupt(name, "m2", "is negative")
    empty = profile.count == 0
    if (profile.minimum is None) != empty or (profile.maximum is None) != empty:
        raise _corrupt(name, "min/max", "must be set exactly when count > 0")
    if profile.minimum is not None and profile.maximum is not None:
        if not (math.isfinite(profile.minimum) and math.isfinite(profile.maximum)):
            raise _corrupt(name, "min/max", "is not a finite number")
        if profile.minimum > profile.maximum:
            raise _corrupt(name, "min/max", "has min above max")
    if profile.max_exact_values < 1:
        raise _corrupt(name, "max_exact_values", "must be at least 1")
    if (profile.exact_values is None) != (profile.exact_counts is None):
        raise _corrupt(name, "exact_values/exact_counts", "must both be set or both be null")
    if profile.exact_values is not None and profile.exact_counts is not None:
        if len(profile.exact_values) != len(profile.exact_counts):
            raise _corrupt(name, "exact_counts", "has not one count per exact value")
        _check_ascending(name, "exact_values", profile.exact_values)
        _check_counts(name, "exact_counts", profile.exact_counts, profile.count)


def _validate_categorical(profile: CategoricalColumnProfile) -> None:
    """Refuse a categorical profile whose counts cannot describe any data."""
    name = profile.name
    _check_non_negative(
        name,
        {
            "rows": profile.rows,
            "nulls": profile.nulls,
            "count": profile.count,
            "other": profile.other,
        },
    )
    if profile.nulls + profile.count != profile.rows:
        raise _corrupt(name, "rows", "is not nulls + count")
    _check_counts(name, "counts", [*profile.counts, profile.other], profile.count)
    if len(set(profile.categories)) != len(profile.categories):
        raise _corrupt(name, "categories", "names a category twice")
    if profile.max_categories < 1:
        raise _corrupt(name, "max_categories", "must be at least 1")


@dataclass(frozen=True)
class BatchStatistics:
    """How far the reference's own batches drift from the whole reference, for one column.

    ``method`` is the drift statistic (a distance method of :mod:`dagster_corrmon.core.drift`);
    ``values`` holds one statistic per reference batch (e.g. per training partition), ``rows``
    the batches' non-null sizes. Written by :func:`dagster_corrmon.core.drift.calibrate_profile`;
    the drift tests read it as the noise a batch of this grain shows with no drift at all.
    """

    method: str
    values: tuple[float, ...]
    rows: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "values": list(self.values), "rows": list(self.rows)}

    @classmethod
    def from_dict(cls, column: str, data: Any) -> "BatchStatistics":
        try:
            values = tuple(float(v) for v in data["values"])
            rows = tuple(int(r) for r in data["rows"])
            result = cls(method=str(data["method"]), values=values, rows=rows)
        except (KeyError, TypeError, ValueError) as error:
            raise InputDataError(
                f"profile is corrupt: batch_statistics of column {column!r}: {error!r}"
            ) from error
        if len(values) != len(rows) or not all(math.isfinite(v) and v >= 0 for v in values):
            raise InputDataError(
                f"profile is corrupt: batch_statistics of column {column!r} need one finite, "
                f"non-negative value per batch ({len(values)} values for {len(rows)} batches)"
            )
        return result


@dataclass(frozen=True)
class RecentStatistics:
    """How much each reference batch differs from the batches just before it, for one column.

    Written by :func:`dagster_corrmon.core.drift.calibrate_profile` from the reference batches in
    time order. ``values``/``rows``: per batch (after the first), its distance from the pooled
    sketches of up to ``RECENT_PARTITIONS`` preceding batches and its non-null size — the noise a
    batch-to-recent comparison shows when nothing breaks. ``sketches``: the last batches'
    sketches (a numeric column's quantiles, a categorical column's counts), the recent reference
    of the first batch checked after the reference. ``novel_values``: per batch, the share of its
    values whose category no other reference batch has (categorical columns only).
    ``empty_batches``: how many reference batches had no value of the column at all (a mostly
    null column is entirely null in some batches without anything breaking).
    """

    values: tuple[float, ...]
    rows: tuple[int, ...]
    sketches: tuple[Mapping[str, Any], ...]
    novel_values: tuple[float, ...] = ()
    empty_batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "rows": list(self.rows),
            "sketches": [dict(sketch) for sketch in self.sketches],
            "novel_values": list(self.novel_values),
            "empty_batches": self.empty_batches,
        }

    @classmethod
    def from_dict(cls, column: str, data: Any) -> "RecentStatistics":
        try:
            result = cls(
                values=tuple(float(v) for v in data["values"]),
                rows=tuple(int(r) for r in data["rows"]),
                sketches=tuple(dict(sketch) for sketch in data["sketches"]),
                novel_values=tuple(float(v) for v in data.get("novel_values", ())),
                empty_batches=int(data.get("empty_batches", 0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputDataError(
                f"profile is corrupt: recent_statistics of column {column!r}: {error!r}"
            ) from error
        if len(result.values) != len(result.rows) or not all(
            math.isfinite(v) and v >= 0 for v in (*result.values, *result.novel_values)
        ):
            raise InputDataError(
                f"profile is corrupt: recent_statistics of column {column!r} need one finite, "
                "non-negative value per batch"
            )
        return result


@dataclass(frozen=True)
class DatasetProfile:
    """Profiles of the columns of one batch (or of the merge of several batches).

    ``batch_statistics`` (optional, per column) records how much the reference's own batches
    drift from it (see :class:`BatchStatistics`), ``recent_statistics`` how much each differs
    from the batches before it (:class:`RecentStatistics`); a merged profile has neither.
    ``empty_columns`` are columns with no value at all in the reference (kept by
    ``build_reference_profile(keep_empty=True)``): nothing to compare a distribution with, but
    a column that becomes filled has changed state, and the drift check says so.
    """

    rows: int
    columns: Mapping[str, ColumnProfile] = field(default_factory=dict)
    schema_version: int = PROFILE_SCHEMA_VERSION
    batch_statistics: Mapping[str, BatchStatistics] = field(default_factory=dict)
    recent_statistics: Mapping[str, RecentStatistics] = field(default_factory=dict)
    empty_columns: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def column(self, name: str) -> ColumnProfile:
        """The profile of one column; :class:`InputDataError` listing the known ones if absent."""
        try:
            return self.columns[name]
        except KeyError:
            known = ", ".join(self.columns) or "none"
            raise InputDataError(
                f"column {name!r} is not in the profile (profiled columns: {known})"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": PROFILE_SCHEMA,
            "schema_version": self.schema_version,
            "rows": self.rows,
            "columns": [profile.to_dict() for profile in self.columns.values()],
        }
        if self.batch_statistics:  # optional: profiles without it stay byte-identical
            data["batch_statistics"] = {
                name: stats.to_dict() for name, stats in self.batch_statistics.items()
            }
        if self.recent_statistics:
            data["recent_statistics"] = {
                name: stats.to_dict() for name, stats in self.recent_statistics.items()
            }
        if self.empty_columns:
            data["empty_columns"] = list(self.empty_columns)
        return data

    def to_json(self, *, indent: int | None = None) -> str:
        """Strict JSON (no NaN/Infinity), stable key order."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DatasetProfile":
        if not isinstance(data, Mapping) or data.get("schema") != PROFILE_SCHEMA:
            raise InputDataError("not a corrmon profile (missing 'schema': 'corrmon.profile')")
        version = data.get("schema_version")
        if version != PROFILE_SCHEMA_VERSION:
            raise InputDataError(
                f"profile schema version {version} is not supported "
                f"(this corrmon reads version {PROFILE_SCHEMA_VERSION}); rebuild the profile"
            )
        columns: dict[str, ColumnProfile] = {}
        try:
            for entry in data["columns"]:
                kind = entry["kind"]
                if kind in NUMERIC_KINDS:
                    profile: ColumnProfile = NumericColumnProfile.from_dict(entry)
                elif kind in CATEGORICAL_KINDS:
                    profile = CategoricalColumnProfile.from_dict(entry)
                else:
                    raise InputDataError(f"profile has a column of unknown kind {kind!r}")
                columns[profile.name] = profile
            rows = int(data["rows"])
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, InputDataError):
                raise
            raise InputDataError(f"profile is corrupt: {error!r}") from error
        raw_batches = data.get("batch_statistics") or {}
        if not isinstance(raw_batches, Mapping):
            raise InputDataError("profile is corrupt: batch_statistics is not an object")
        batch_statistics: dict[str, BatchStatistics] = {}
        for name, entry in raw_batches.items():
            if name not in columns:
                raise InputDataError(
                    f"profile is corrupt: batch_statistics name column {name!r}, "
                    "which the profile does not have"
                )
            batch_statistics[name] = BatchStatistics.from_dict(name, entry)
        raw_recent = data.get("recent_statistics") or {}
        if not isinstance(raw_recent, Mapping) or not set(raw_recent) <= set(columns):
            raise InputDataError(
                "profile is corrupt: recent_statistics must map profiled columns to statistics"
            )
        raw_empty = data.get("empty_columns") or []
        if not isinstance(raw_empty, list) or set(map(str, raw_empty)) & set(columns):
            raise InputDataError(
                "profile is corrupt: empty_columns must list columns the profile does not have"
            )
        return cls(
            rows=rows,
            columns=columns,
            schema_version=PROFILE_SCHEMA_VERSION,
            batch_statistics=batch_statistics,
            recent_statistics={
                name: RecentStatistics.from_dict(name, entry) for name, entry in raw_recent.items()
            },
            empty_columns=tuple(str(name) for name in raw_empty),
        )

    @classmethod
    def from_json(cls, text: str) -> "DatasetProfile":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputDataError(f"profile is not valid JSON: {error}") from error
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "DatasetProfile":
        file = Path(path)
        if not file.is_file():
            raise InputDataError(f"{file}: no such profile file")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputDataError(f"{file}: cannot read profile: {error}") from error
        try:
            return cls.from_json(text)
        except InputDataError as error:
            raise InputDataError(f"{file}: {error}") from error


# ------------------------------------------------------------------------------------ building


def _check_positive_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer ≥ {minimum}, got {value!r}")


def _select_columns(frame: pd.DataFrame, columns: Sequence[str] | None, what: str) -> list[str]:
    if not isinstance(frame, pd.DataFrame):
        raise InputDataError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise InputDataError(f"{what} has no rows")
    names = [str(name) for name in frame.columns] if columns is None else list(columns)
    if not names:
        raise InputDataError(f"{what} has no columns to profile")
    for name in names:
        if name not in frame.columns:
            known = ", ".join(map(str, frame.columns))
            raise InputDataError(f"column {name!r} is not in the {what} (columns: {known})")
    return names


def _quantile_edges(sorted_values: np.ndarray, bins: int) -> np.ndarray:
    """Strictly increasing interior edges at the reference's quantiles (linear interpolation).

    The ``i / bins`` quantiles, plus tail quantiles at ``10^-j / bins`` and ``1 − 10^-j / bins``
    down to one value's share: the open outer bins then hold about one value each, which keeps
    the binned Wasserstein error bound of ``core.drift`` small for heavy-tailed data.
    """
    tail_levels: list[float] = []
    level = 0.1 / bins
    while level >= 1.0 / max(len(sorted_values), 1):
        tail_levels.append(level)
        level /= 10
    probabilities = np.r_[tail_levels, np.arange(1, bins) / bins, 1.0 - np.array(tail_levels)]
    edges = np.quantile(sorted_values, np.sort(probabilities))
    return np.unique(edges)


def _numeric_profile(
    name: str,
    series: pd.Series,
    kind: str,
    *,
    edges: np.ndarray,
    max_exact_values: int,
) -> NumericColumnProfile:
    values, nulls, infinite = numeric_values(series, kind=kind)
    sorted_values = np.sort(values)
    count = len(sorted_values)
    counts, offsets = histogram_on_edges(sorted_values, edges)
    distinct_values, distinct_counts = sorted_distinct(sorted_values)
    keep_exact = len(distinct_values) <= max_exact_values
    mean = float(np.mean(sorted_values)) if count else 0.0
    m2 = float(np.sum(np.square(sorted_values - mean))) if count else 0.0
    return NumericColumnProfile(
        name=name,
        kind=kind,
        integer=is_integer_column(series),
        rows=len(series),
        nulls=nulls,
        infinite=infinite,
        count=count,
        minimum=float(sorted_values[0]) if count else None,
        maximum=float(sorted_values[-1]) if count else None,
        mean=mean,
        m2=m2,
        # .tolist() converts to Python floats/ints in C: this runs per column per record batch.
        edges=tuple(np.asarray(edges, dtype=np.float64).tolist()),
        histogram=tuple(counts.tolist()),
        offsets=tuple(offsets.tolist()),
        max_exact_values=max_exact_values,
        exact_values=tuple(distinct_values.tolist()) if keep_exact else None,
        exact_counts=tuple(distinct_counts.tolist()) if keep_exact else None,
    )


def _categorical_profile(
    name: str,
    series: pd.Series,
    kind: str,
    *,
    categories: Sequence[str],
    max_categories: int,
    tail_geometry: CategoryTail | None = None,
) -> CategoricalColumnProfile:
    """Counts on the reference's categories; with ``tail_geometry``, the rest filed in a filter."""
    counts = category_counts(series)
    tail = None
    if tail_geometry is not None:
        kept_names = set(categories)
        lumped = [category for category in counts if category not in kept_names]
        tail = tail_geometry.cleared().with_categories(lumped)
    kept = [counts.get(category, 0) for category in categories]
    count = sum(counts.values())
    return CategoricalColumnProfile(
        name=name,
        kind=kind,
        rows=len(series),
        nulls=int(series.isna().sum()),
        count=count,
        categories=tuple(categories),
        counts=tuple(kept),
        other=count - sum(kept),
        max_categories=max_categories,
        tail=tail,
    )


def build_reference_profile(
    frame: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    max_exact_values: int = DEFAULT_MAX_EXACT_VALUES,
    keep_empty: bool = False,
) -> DatasetProfile:
    """Profile a reference table, fixing the bin edges and categories later batches reuse.

    Numeric edges are the reference's ``1/bins … (bins-1)/bins`` quantiles (duplicates dropped);
    categories are its ``max_categories`` most frequent values (ties broken by value). Every
    profiled column needs at least one non-null value here: a reference cannot describe nothing —
    unless ``keep_empty``, which lists such columns in ``empty_columns`` instead (a model's
    feature that is all null in training is still a feature whose filling is news).
    """
    _check_positive_int("bins", bins, 2)
    _check_positive_int("max_categories", max_categories, 1)
    _check_positive_int("max_exact_values", max_exact_values, MIN_EXACT_VALUES)
    names = _select_columns(frame, columns, "reference")
    profiles: dict[str, ColumnProfile] = {}
    empty: list[str] = []
    for name in names:
        series = column_series(frame, name)
        kind = column_kind(series, column=name)
        if keep_empty and (kind == _EMPTY or not series.notna().any()):
            empty.append(name)
            continue
        if kind == _EMPTY:
            raise InsufficientDataError(
                f"column {name!r} has no non-null values in the reference; cannot profile it"
            )
        if kind in NUMERIC_KINDS:
            values, _, _ = numeric_values(series, kind=kind)
            if len(values) == 0:
                raise InsufficientDataError(
                    f"column {name!r} has no finite values in the reference; cannot profile it"
                )
            profiles[name] = _numeric_profile(
                name,
                series,
                kind,
                edges=_quantile_edges(np.sort(values), bins),
                max_exact_values=max_exact_values,
            )
        elif kind == "boolean":
            profiles[name] = _categorical_profile(
                name, series, kind, categories=_BOOLEAN_CATEGORIES, max_categories=2
            )
        else:
            counts = category_counts(series)
            if not counts:
                raise InsufficientDataError(
                    f"column {name!r} has no non-null values in the reference; cannot profile it"
                )
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            categories = [category for category, _ in ranked[:max_categories]]
            lumped = [category for category, _ in ranked[max_categories:]]
            profiles[name] = _categorical_profile(
                name,
                series,
                kind,
                categories=categories,
                max_categories=max_categories,
                tail_geometry=CategoryTail.sized_for(len(lumped)) if lumped else None,
            )
    return DatasetProfile(rows=len(frame), columns=profiles, empty_columns=tuple(empty))


def _numeric_profile_like(
    name: str, series: pd.Series, reference: NumericColumnProfile
) -> NumericColumnProfile:
    """A batch's numeric profile on the reference's edges and exact-value cap (it merges)."""
    return _numeric_profile(
        name,
        series,
        reference.kind,
        edges=np.asarray(reference.edges, dtype=np.float64),
        max_exact_values=reference.max_exact_values,
    )


def profile_batch(frame: pd.DataFrame, *, like: DatasetProfile) -> DatasetProfile:
    """Profile a batch on the edges and categories of ``like`` (usually the reference).

    One vectorised pass per column (a sort, then the edges searched in it). The result merges
    with ``like`` and with every other batch profiled like it. Extra columns in ``frame`` are
    ignored; a missing column or one whose kind changed is an :class:`InputDataError`.
    """
    names = _select_columns(frame, list(like.columns), "batch")
    profiles: dict[str, ColumnProfile] = {}
    for name in names:
        reference = like.columns[name]
        series = column_series(frame, name)
        compatible_kind(series, reference.kind, column=name, where="batch")
        if isinstance(reference, NumericColumnProfile):
            profiles[name] = _numeric_profile_like(name, series, reference)
        else:
            profiles[name] = _categorical_profile(
                name,
                series,
                reference.kind,
                categories=reference.categories,
                max_categories=reference.max_categories,
                tail_geometry=reference.tail,
            )
    return DatasetProfile(rows=len(frame), columns=profiles)


# ------------------------------------------------------------------------------------- merging


def _sum_tuples(a: tuple[Any, ...], b: tuple[Any, ...], dtype: Any) -> tuple[Any, ...]:
    """Element-wise sum of two equally long tuples, in numpy (merges run per record batch)."""
    if len(a) != len(b):
        raise ValueError(f"cannot add {len(a)} bins to {len(b)}")
    return tuple((np.asarray(a, dtype=dtype) + np.asarray(b, dtype=dtype)).tolist())


def _merge_numeric(a: NumericColumnProfile, b: NumericColumnProfile) -> NumericColumnProfile:
    if a.edges != b.edges:
        raise InputDataError(
            f"cannot merge profiles of column {a.name!r}: different bin edges "
            "(profile every batch with like= the same reference)"
        )
    if a.max_exact_values != b.max_exact_values:
        raise InputDataError(
            f"cannot merge profiles of column {a.name!r}: different max_exact_values "
            f"({a.max_exact_values} vs {b.max_exact_values})"
        )
    count = a.count + b.count
    if a.count == 0 or b.count == 0:
        mean, m2 = (b.mean, b.m2) if a.count == 0 else (a.mean, a.m2)
    else:
        # Chan, Golub & LeVeque (1979): exact pairwise combination of mean and M2.
        delta = b.mean - a.mean
        mean = a.mean + delta * b.count / count
        m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / count
    minima = [value for value in (a.minimum, b.minimum) if value is not None]
    maxima = [value for value in (a.maximum, b.maximum) if value is not None]
    exact_values: tuple[float, ...] | None = None
    exact_counts: tuple[int, ...] | None = None
    if a.exact_values is not None and b.exact_values is not None:
        assert a.exact_counts is not None and b.exact_counts is not None
        merged: dict[float, int] = dict(zip(a.exact_values, a.exact_counts, strict=True))
        for value, value_count in zip(b.exact_values, b.exact_counts, strict=True):
            merged[value] = merged.get(value, 0) + value_count
        if len(merged) <= a.max_exact_values:
            ordered = sorted(merged.items())
            exact_values = tuple(value for value, _ in ordered)
            exact_counts = tuple(value_count for _, value_count in ordered)
    return replace(
        a,
        integer=a.integer and b.integer,
        rows=a.rows + b.rows,
        nulls=a.nulls + b.nulls,
        infinite=a.infinite + b.infinite,
        count=count,
        minimum=min(minima) if minima else None,
        maximum=max(maxima) if maxima else None,
        mean=mean,
        m2=m2,
        histogram=_sum_tuples(a.histogram, b.histogram, np.int64),
        offsets=_sum_tuples(a.offsets, b.offsets, np.float64),
        exact_values=exact_values,
        exact_counts=exact_counts,
    )


def _merge_categorical(
    a: CategoricalColumnProfile, b: CategoricalColumnProfile
) -> CategoricalColumnProfile:
    if a.categories != b.categories or (a.tail is None) != (b.tail is None):
        raise InputDataError(
            f"cannot merge profiles of column {a.name!r}: different categories "
            "(profile every batch with like= the same reference)"
        )
    tail = a.tail
    if a.tail is not None and b.tail is not None:
        try:
            tail = a.tail.union(b.tail)
        except ValueError:
            raise InputDataError(
                f"cannot merge profiles of column {a.name!r}: different category filters "
                "(profile every batch with like= the same reference)"
            ) from None
    return replace(
        a,
        rows=a.rows + b.rows,
        nulls=a.nulls + b.nulls,
        count=a.count + b.count,
        counts=tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)),
        other=a.other + b.other,
        tail=tail,
    )


def merge_profiles(a: DatasetProfile, b: DatasetProfile) -> DatasetProfile:
    """The profile of the concatenation of the two batches ``a`` and ``b`` describe.

    Both must cover the same columns with the same edges and categories (i.e. come from
    :func:`build_reference_profile` / :func:`profile_batch` with the same reference).
    """
    if list(a.columns) != list(b.columns):
        raise InputDataError(
            f"cannot merge profiles of different columns: {list(a.columns)} vs {list(b.columns)}"
        )
    merged: dict[str, ColumnProfile] = {}
    for name, left in a.columns.items():
        right = b.columns[name]
        if left.kind != right.kind:
            raise InputDataError(
                f"cannot merge profiles of column {name!r}: {left.kind} vs {right.kind}"
            )
        if isinstance(left, NumericColumnProfile) and isinstance(right, NumericColumnProfile):
            merged[name] = _merge_numeric(left, right)
        elif isinstance(left, CategoricalColumnProfile) and isinstance(
            right, CategoricalColumnProfile
        ):
            merged[name] = _merge_categorical(left, right)
        else:  # same kind string but different classes: a hand-edited profile
            raise InputDataError(f"cannot merge profiles of column {name!r}: corrupt profile")
    return DatasetProfile(rows=a.rows + b.rows, columns=merged)


def merge_all(profiles: Iterable[DatasetProfile]) -> DatasetProfile:
    """Merge any number of batch profiles (at least one)."""
    iterator = iter(profiles)
    try:
        total = next(iterator)
    except StopIteration:
        raise InputDataError("merge_all needs at least one profile") from None
    for profile in iterator:
        total = merge_profiles(total, profile)
    return total


# ------------------------------------------------------------------------- current-batch sketches


@dataclass(frozen=True)
class CategoryCounts:
    """Every category's count in a current batch: the current side of a categorical drift test.

    Unlike a :class:`CategoricalColumnProfile` it keeps *all* categories (a current batch is
    compared with the reference, never stored), so a value the reference never saw keeps its own
    count. Its size grows with the batch's distinct values, not with its rows.
    """

    name: str
    kind: str
    rows: int
    nulls: int
    counts: Mapping[str, int]

    @property
    def count(self) -> int:
        return sum(self.counts.values())


ColumnSketch = NumericColumnProfile | CategoryCounts


@dataclass(frozen=True)
class DatasetSketch:
    """Mergeable summaries of a current batch, column by column, on a reference's edges.

    A large current table is sketched record batch by record batch and merged
    (:func:`merge_sketches`), then scored against the reference profile with
    ``core.drift.detect_drift_from_sketch`` — without ever holding the table. Numeric columns are
    :class:`NumericColumnProfile` on the reference's edges (with exact values up to the
    reference's cap), categorical ones :class:`CategoryCounts`.
    """

    rows: int
    columns: Mapping[str, ColumnSketch]


def sketch_batch(
    frame: pd.DataFrame, *, like: DatasetProfile, columns: Sequence[str] | None = None
) -> DatasetSketch:
    """Sketch the ``columns`` (default: all of ``like``'s) of one current batch.

    A column whose kind differs from the reference's is an :class:`InputDataError`; an all-null
    column is not (its sketch counts no values, which the drift test reports for that column).
    """
    names = _select_columns(frame, list(like.columns) if columns is None else columns, "batch")
    sketches: dict[str, ColumnSketch] = {}
    for name in names:
        reference = like.column(name)
        series = column_series(frame, name)
        compatible_kind(series, reference.kind, column=name, where="current data")
        if isinstance(reference, NumericColumnProfile):
            sketches[name] = _numeric_profile_like(name, series, reference)
        else:
            sketches[name] = CategoryCounts(
                name=name,
                kind=reference.kind,
                rows=len(series),
                nulls=int(series.isna().sum()),
                counts=category_counts(series),
            )
    return DatasetSketch(rows=len(frame), columns=sketches)


def merge_sketches(a: DatasetSketch, b: DatasetSketch) -> DatasetSketch:
    """The sketch of the concatenation of the two batches (same columns, same reference)."""
    if list(a.columns) != list(b.columns):
        raise InputDataError(
            f"cannot merge sketches of different columns: {list(a.columns)} vs {list(b.columns)}"
        )
    merged: dict[str, ColumnSketch] = {}
    for name, left in a.columns.items():
        right = b.columns[name]
        if isinstance(left, NumericColumnProfile) and isinstance(right, NumericColumnProfile):
            merged[name] = _merge_numeric(left, right)
        elif isinstance(left, CategoryCounts) and isinstance(right, CategoryCounts):
            counts = dict(left.counts)
            for category, count in right.counts.items():
                counts[category] = counts.get(category, 0) + count
            merged[name] = replace(
                left, rows=left.rows + right.rows, nulls=left.nulls + right.nulls, counts=counts
            )
        else:
            raise InputDataError(f"cannot merge sketches of column {name!r}: different kinds")
    return DatasetSketch(rows=a.rows + b.rows, columns=merged)
