"""core/profile: known answers against numpy, exact merging, JSON round trips, clear errors."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagster_corrmon.core.profile import (
    PROFILE_SCHEMA_VERSION,
    CategoricalColumnProfile,
    DatasetProfile,
    NumericColumnProfile,
    build_reference_profile,
    histogram_on_edges,
    merge_all,
    merge_profiles,
    profile_batch,
)
from dagster_corrmon.errors import ConfigError, InputDataError, InsufficientDataError

# ------------------------------------------------------------------------------ known answers


def test_numeric_profile_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(3.0, 2.0, 5000)
    values[[3, 9]] = np.nan
    values[11] = np.inf
    frame = pd.DataFrame({"x": values})
    profile = build_reference_profile(frame, bins=10)
    column = profile.column("x")
    assert isinstance(column, NumericColumnProfile)
    finite = values[np.isfinite(values)]
    assert (column.rows, column.nulls, column.infinite, column.count) == (5000, 2, 1, 4997)
    assert column.minimum == finite.min() and column.maximum == finite.max()
    assert column.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert column.std == pytest.approx(np.std(finite), rel=1e-12)
    assert column.null_fraction == pytest.approx(2 / 5000)
    # Edges are the 1/10 … 9/10 quantiles plus tail quantiles 0.01 and 0.001 (5000 rows).
    expected_edges = np.quantile(finite, [0.001, 0.01, *np.arange(1, 10) / 10, 0.99, 0.999])
    np.testing.assert_allclose(column.edges, expected_edges)
    assert len(column.histogram) == len(column.edges) + 1
    assert sum(column.histogram) == column.count
    counts_by_numpy = np.histogram(finite, np.r_[-np.inf, column.edges, np.inf])[0]
    assert list(column.histogram) == list(counts_by_numpy)
    assert column.exact_values is None and column.distinct is None  # 4997 > 1000 distinct


def test_histogram_offsets_known_answer() -> None:
    counts, offsets = histogram_on_edges(np.array([0.5, 1.0, 1.5, 3.0]), np.array([1.0, 2.0]))
    assert list(counts) == [1, 2, 1]
    # first bin: Σ(e1 − x) = 0.5; [1, 2): Σ(x − 1) = 0 + 0.5; [2, inf): Σ(x − 2) = 1
    np.testing.assert_allclose(offsets, [0.5, 0.5, 1.0])


def test_low_cardinality_numeric_keeps_exact_counts() -> None:
    frame = pd.DataFrame({"k": [1, 2, 2, 3, 3, 3, 7]})
    column = build_reference_profile(frame).column("k")
    assert isinstance(column, NumericColumnProfile)
    assert column.integer
    assert column.exact_values == (1.0, 2.0, 3.0, 7.0)
    assert column.exact_counts == (1, 2, 3, 1)
    assert column.distinct == 4


def test_datetime_is_profiled_as_epoch_seconds() -> None:
    frame = pd.DataFrame(
        {
            "naive": pd.to_datetime(["1970-01-01 00:00:10", None, "1970-01-01 00:01:00"]),
            "aware": pd.to_datetime(
                ["1970-01-01 01:00:10+01:00", "1970-01-01 00:00:20Z", "1970-01-01T00:01:00Z"],
                utc=True,
                format="ISO8601",
            ),
        }
    )
    profile = build_reference_profile(frame)
    naive = profile.column("naive")
    aware = profile.column("aware")
    assert isinstance(naive, NumericColumnProfile) and isinstance(aware, NumericColumnProfile)
    assert naive.kind == "datetime" and naive.nulls == 1
    assert naive.exact_values == (10.0, 60.0)
    assert aware.exact_values == (10.0, 20.0, 60.0)


def test_boolean_and_categorical_profiles() -> None:
    frame = pd.DataFrame(
        {
            "flag": [True, False, True, True],
            "nullable_flag": pd.array([True, None, False, True], dtype="boolean"),
            "city": ["a", "b", "a", None],
            "code": pd.Categorical(["x", "y", "x", "x"], categories=["x", "y", "z"]),
        }
    )
    profile = build_reference_profile(frame)
    flag = profile.column("flag")
    assert isinstance(flag, CategoricalColumnProfile)
    assert flag.kind == "boolean"
    assert flag.category_counts() == {"False": 1, "True": 3}
    nullable = profile.column("nullable_flag")
    assert isinstance(nullable, CategoricalColumnProfile)
    assert (nullable.kind, nullable.nulls, nullable.count) == ("boolean", 1, 3)
    city = profile.column("city")
    assert isinstance(city, CategoricalColumnProfile)
    assert city.categories == ("a", "b") and city.counts == (2, 1) and city.nulls == 1
    code = profile.column("code")
    assert isinstance(code, CategoricalColumnProfile)
    assert code.category_counts() == {"x": 3, "y": 1}  # the unused category "z" is not kept


def test_categories_past_the_cap_share_the_other_bucket() -> None:
    frame = pd.DataFrame({"c": list("aaaabbbccd")})
    reference = build_reference_profile(frame, max_categories=2)
    column = reference.column("c")
    assert isinstance(column, CategoricalColumnProfile)
    assert column.categories == ("a", "b") and column.counts == (4, 3)
    assert column.other == 3 and column.distinct is None
    batch = profile_batch(pd.DataFrame({"c": ["a", "e", "e", "b"]}), like=reference)
    batch_column = batch.column("c")
    assert isinstance(batch_column, CategoricalColumnProfile)
    assert batch_column.counts == (1, 1) and batch_column.other == 2


def test_reference_profile_equals_its_own_batch_profile() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=300), "c": rng.choice(["u", "v"], 300)})
    reference = build_reference_profile(frame, bins=20)
    assert profile_batch(frame, like=reference) == reference


# -------------------------------------------------------------------------- merge properties


def _assert_profiles_close(actual: DatasetProfile, expected: DatasetProfile) -> None:
    assert actual.rows == expected.rows
    assert list(actual.columns) == list(expected.columns)
    for name, left in actual.columns.items():
        right = expected.columns[name]
        if isinstance(left, NumericColumnProfile):
            assert isinstance(right, NumericColumnProfile)
            for field in ("rows", "nulls", "infinite", "count", "minimum", "maximum"):
                assert getattr(left, field) == getattr(right, field), (name, field)
            assert left.histogram == right.histogram
            assert left.exact_values == right.exact_values
            assert left.exact_counts == right.exact_counts
            scale = max(1.0, abs(right.mean))
            assert math.isclose(left.mean, right.mean, rel_tol=1e-9, abs_tol=1e-9 * scale)
            assert math.isclose(left.m2, right.m2, rel_tol=1e-7, abs_tol=1e-6 * scale**2)
            width = (right.maximum or 0.0) - (right.minimum or 0.0)
            np.testing.assert_allclose(
                left.offsets, right.offsets, rtol=1e-7, atol=1e-9 * max(width, 1.0) * left.rows
            )
        else:
            assert left == right


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
_value = st.one_of(_finite, st.just(math.nan), st.sampled_from([0.0, 1.0, 1.0, 2.5]))


@st.composite
def _frames(draw: st.DrawFn, min_rows: int = 1) -> pd.DataFrame:
    rows = draw(st.integers(min_value=min_rows, max_value=40))
    return pd.DataFrame(
        {
            "x": draw(st.lists(_value, min_size=rows, max_size=rows)),
            "c": draw(
                st.lists(st.sampled_from(["a", "b", "c", None]), min_size=rows, max_size=rows)
            ),
            "flag": draw(st.lists(st.booleans(), min_size=rows, max_size=rows)),
        }
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reference=_frames(min_rows=5), a=_frames(), b=_frames())
def test_merge_of_batches_equals_profile_of_concatenation(
    reference: pd.DataFrame, a: pd.DataFrame, b: pd.DataFrame
) -> None:
    if not np.isfinite(reference["x"].to_numpy()).any() or bool(reference["c"].isna().all()):
        reference.loc[0, ["x", "c"]] = [0.5, "a"]
    like = build_reference_profile(reference, bins=4, max_categories=2, max_exact_values=20)
    merged = merge_profiles(profile_batch(a, like=like), profile_batch(b, like=like))
    whole = profile_batch(pd.concat([a, b], ignore_index=True), like=like)
    _assert_profiles_close(merged, whole)


def test_exact_values_overflow_consistently_when_merging() -> None:
    reference = pd.DataFrame({"x": np.arange(10.0)})
    like = build_reference_profile(reference, max_exact_values=20)
    a = pd.DataFrame({"x": np.arange(15.0)})
    b = pd.DataFrame({"x": np.arange(10.0, 25.0)})
    merged = merge_profiles(profile_batch(a, like=like), profile_batch(b, like=like))
    whole = profile_batch(pd.concat([a, b]), like=like)
    column = merged.column("x")
    assert isinstance(column, NumericColumnProfile)
    assert column.exact_values is None  # 25 distinct values > 20: both forget them
    _assert_profiles_close(merged, whole)
    assert merge_all([profile_batch(a, like=like), profile_batch(b, like=like)]) == merged


def test_merging_profiles_of_different_references_is_refused() -> None:
    one = build_reference_profile(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    other = build_reference_profile(pd.DataFrame({"x": [10.0, 20.0, 30.0]}))
    with pytest.raises(InputDataError, match=r"'x'.*different bin edges"):
        merge_profiles(one, other)
    with pytest.raises(InputDataError, match="different columns"):
        merge_profiles(one, build_reference_profile(pd.DataFrame({"y": [1.0]})))


# ------------------------------------------------------------------------------------- JSON


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=_frames(min_rows=3))
def test_json_round_trip_is_lossless(frame: pd.DataFrame) -> None:
    frame.loc[0, ["x", "c"]] = [1.25, "b"]
    profile = build_reference_profile(frame, bins=5)
    text = profile.to_json()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["schema_version"] == PROFILE_SCHEMA_VERSION
    assert DatasetProfile.from_json(text) == profile


def test_save_and_load(tmp_path) -> None:
    profile = build_reference_profile(pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}))
    path = tmp_path / "ref.json"
    profile.save(path)
    assert DatasetProfile.load(path) == profile


def test_loading_bad_profiles_names_the_problem(tmp_path) -> None:
    with pytest.raises(InputDataError, match="no such profile file"):
        DatasetProfile.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"broken\.json: profile is not valid JSON"):
        DatasetProfile.load(broken)
    data = build_reference_profile(pd.DataFrame({"x": [1.0]})).to_dict()
    with pytest.raises(InputDataError, match="schema version 99 is not supported"):
        DatasetProfile.from_dict({**data, "schema_version": 99})
    with pytest.raises(InputDataError, match="not a corrmon profile"):
        DatasetProfile.from_dict({"columns": []})
    data["columns"][0]["histogram"] = [1]
    with pytest.raises(InputDataError, match="'x' is corrupt"):
        DatasetProfile.from_dict(data)


# ------------------------------------------------------------------------------------ errors


def test_bad_input_is_an_input_data_error_naming_the_column() -> None:
    with pytest.raises(InputDataError, match="reference has no rows"):
        build_reference_profile(pd.DataFrame({"x": pd.Series([], dtype=float)}))
    with pytest.raises(InputDataError, match=r"column 'nope' is not in the reference \(columns: x"):
        build_reference_profile(pd.DataFrame({"x": [1.0]}), columns=["nope"])
    with pytest.raises(InputDataError, match="column 'z' has unsupported dtype complex"):
        build_reference_profile(pd.DataFrame({"z": [1 + 2j]}))
    with pytest.raises(InputDataError, match="column 'd' has unsupported dtype timedelta"):
        build_reference_profile(pd.DataFrame({"d": pd.to_timedelta([1, 2], unit="s")}))
    with pytest.raises(InputDataError, match="column 'o' holds values of type 'mixed'"):
        build_reference_profile(pd.DataFrame({"o": [{"a": 1}, "text"]}))
    with pytest.raises(InsufficientDataError, match="column 'n' has no non-null values"):
        build_reference_profile(pd.DataFrame({"n": [None, None]}))
    with pytest.raises(InsufficientDataError, match="column 'f' has no finite values"):
        build_reference_profile(pd.DataFrame({"f": [np.inf, np.nan]}))


def test_batch_whose_column_changed_type_is_refused() -> None:
    like = build_reference_profile(pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}))
    with pytest.raises(InputDataError, match="column 'x' is numeric in the reference but categ"):
        profile_batch(pd.DataFrame({"x": ["1", "2"], "c": ["a", "b"]}), like=like)
    with pytest.raises(InputDataError, match=r"column 'c' is not in the batch \(columns: x"):
        profile_batch(pd.DataFrame({"x": [1.0]}), like=like)
    # An all-null batch column is data (a null spike), not a type change.
    batch = profile_batch(pd.DataFrame({"x": [None, None], "c": ["a", None]}), like=like)
    column = batch.column("x")
    assert isinstance(column, NumericColumnProfile)
    assert (column.count, column.nulls, column.null_fraction) == (0, 2, 1.0)


def test_bad_configuration_is_a_config_error() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="bins"):
        build_reference_profile(frame, bins=1)
    with pytest.raises(ConfigError, match="max_exact_values"):
        build_reference_profile(frame, max_exact_values=5)


@pytest.mark.parametrize(
    ("column", "corrupt", "message"),
    [
        ("x", lambda c: c["histogram"].__setitem__(0, -5), "'histogram' holds a negative"),
        ("x", lambda c: c["edges"].reverse(), "'edges' is not strictly increasing"),
        ("x", lambda c: c["edges"].__setitem__(1, float("nan")), "'edges' holds a NaN"),
        ("x", lambda c: c.__setitem__("nulls", -1), "'nulls' holds a negative"),
        ("x", lambda c: c.__setitem__("m2", float("nan")), "'m2' is not a finite"),
        ("c", lambda c: c["counts"].__setitem__(0, -3), "'counts' holds a negative"),
        ("c", lambda c: c.__setitem__("other", 7), "'counts' sums to"),
    ],
)
def test_semantically_corrupt_profiles_are_refused_naming_column_and_field(
    column, corrupt, message
) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(["a", "b", "c"], 3000)})
    data = build_reference_profile(frame, max_exact_values=20).to_dict()
    entry = next(entry for entry in data["columns"] if entry["name"] == column)
    corrupt(entry)
    with pytest.raises(InputDataError, match=rf"column '{column}' is corrupt: field {message}"):
        DatasetProfile.from_dict(data)
