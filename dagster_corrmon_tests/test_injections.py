import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from dagster_corrmon.errors import InputDataError
from dagster_corrmon.scenarios.injections import (
    INJECTION_KINDS,
    Effect,
    InjectedFailure,
    Injection,
    injection_rng,
)

ADAPTER: TypeAdapter[Injection] = TypeAdapter(Injection)


def _frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "temp": rng.normal(50, 10, n),
            "carrier": rng.choice(["AA", "UA", "DL"], n),
            "wind": rng.normal(10, 3, n),
        }
    )


def _make(**fields: object) -> Injection:
    return ADAPTER.validate_python({"source": "weather", "start": "2013-03-01", **fields})


def test_every_declared_kind_validates() -> None:
    params = {
        "schema_change": {"column": "temp"},
        "null_spike": {"column": "temp"},
        "unit_change": {"column": "temp"},
        "new_category": {"column": "carrier"},
        "benign_drift": {"column": "wind"},
        "covariate_shift": {"column": "temp"},
        "code_change": {"column": "temp"},
    }
    for kind in INJECTION_KINDS:
        injection = _make(kind=kind, **params.get(kind, {}))
        assert injection.kind == kind


def test_unit_change_fahrenheit_to_celsius_is_exact() -> None:
    frame = _frame()
    injection = _make(kind="unit_change", column="temp", scale=5 / 9, offset=-160 / 9)
    out = injection.apply(frame, injection_rng("u", "2013-03-01"))
    np.testing.assert_allclose(out["temp"], (frame["temp"] - 32) * 5 / 9)
    assert frame["temp"].mean() > 40  # the input batch is not modified in place


def test_null_spike_hits_the_requested_fraction_reproducibly() -> None:
    frame = _frame(10_000)
    injection = _make(kind="null_spike", column="temp", fraction=0.4)
    first = injection.apply(frame, injection_rng("n", "2013-03-02"))
    second = injection.apply(frame, injection_rng("n", "2013-03-02"))
    assert first["temp"].isna().mean() == pytest.approx(0.4, abs=0.02)
    pd.testing.assert_frame_equal(first, second)


def test_schema_change_actions() -> None:
    frame = _frame()
    rng = injection_rng("s", "p")
    renamed = _make(kind="schema_change", column="temp", new_name="temperature").apply(frame, rng)
    assert "temperature" in renamed.columns and "temp" not in renamed.columns
    dropped = _make(kind="schema_change", column="temp", action="drop").apply(frame, rng)
    assert "temp" not in dropped.columns
    retyped = _make(kind="schema_change", column="temp", action="retype").apply(frame, rng)
    assert retyped["temp"].dtype == "string"


def test_duplicates_new_category_and_shift() -> None:
    frame = _frame(5000)
    rng = injection_rng("d", "p")
    duplicated = _make(kind="duplicate_rows", fraction=0.5).apply(frame, rng)
    assert len(duplicated) == pytest.approx(7500, rel=0.05)
    assert duplicated.duplicated().sum() == len(duplicated) - len(frame)
    newcat = _make(kind="new_category", column="carrier", value="ZZ").apply(frame, rng)
    assert (newcat["carrier"] == "ZZ").mean() == pytest.approx(0.3, abs=0.03)
    shifted = _make(kind="covariate_shift", column="temp", shift_std=2.0).apply(frame, rng)
    assert shifted["temp"].mean() - frame["temp"].mean() == pytest.approx(
        2.0 * frame["temp"].std(ddof=0), rel=1e-9
    )


def test_non_transform_effects() -> None:
    failure = _make(kind="upstream_run_failure", id="f1")
    assert failure.effect() is Effect.FAIL_RUN
    with pytest.raises(InjectedFailure, match="f1"):
        failure.apply(_frame(), injection_rng("f1", "p"))
    assert _make(kind="missing_batch").apply(_frame(), injection_rng("m", "p")).empty
    assert _make(kind="delayed_batch").effect() is Effect.LATE_BATCH
    assert _make(kind="label_delay").effect() is Effect.LATE_LABELS
    assert _make(kind="code_change", column="temp").effect() is Effect.TRANSFORM_FEATURES


def test_window_and_errors() -> None:
    injection = _make(kind="missing_batch", end="2013-03-05")
    assert injection.active(dt.date(2013, 3, 1)) and injection.active(dt.date(2013, 3, 5))
    assert not injection.active(dt.date(2013, 2, 28)) and not injection.active(dt.date(2013, 3, 6))
    with pytest.raises(ValidationError, match="before start"):
        _make(kind="missing_batch", end="2013-02-01")
    with pytest.raises(ValidationError, match="fraction"):
        _make(kind="null_spike", column="temp", fraction=1.5)
    with pytest.raises(ValidationError):
        _make(kind="no_such_kind")
    with pytest.raises(InputDataError, match="'nope' is not in source 'weather'"):
        _make(kind="null_spike", column="nope").apply(_frame(), injection_rng("x", "p"))


# -- magnitudes: absolute or relative shifts, any duplication factor, several code-change columns


def _small() -> pd.DataFrame:
    return pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 6.0], "y": [10.0, 20.0, 30.0, 40.0], "k": list("abcd")}
    )


def test_a_shift_can_be_absolute_relative_or_in_batch_spreads() -> None:
    frame = _small()  # x: mean 3, population std sqrt(3.5)
    rng = injection_rng("s", "2013-03-01")
    absolute = _make(kind="benign_drift", column="x", shift=2.5).apply(frame, rng)
    assert absolute["x"].tolist() == [3.5, 4.5, 5.5, 8.5]
    relative = _make(kind="benign_drift", column="x", shift_relative=0.5).apply(frame, rng)
    assert relative["x"].tolist() == [2.5, 3.5, 4.5, 7.5]  # + 50 % of the batch mean 3
    spreads = _make(kind="covariate_shift", column="x", shift_std=2.0).apply(frame, rng)
    np.testing.assert_allclose(spreads["x"], frame["x"] + 2.0 * np.std([1.0, 2.0, 3.0, 6.0]))
    default = _make(kind="benign_drift", column="x").apply(frame, rng)  # the historic default
    np.testing.assert_allclose(default["x"], frame["x"] + 1.5 * np.std([1.0, 2.0, 3.0, 6.0]))
    stretched = _make(kind="benign_drift", column="x", shift=1.0, scale=2.0).apply(frame, rng)
    assert stretched["x"].tolist() == [0.0, 2.0, 4.0, 10.0]  # 3 + 2 (x - 3) + 1
    assert frame["x"].tolist() == [1.0, 2.0, 3.0, 6.0]


def test_a_shift_takes_one_magnitude() -> None:
    with pytest.raises(ValidationError, match="one of shift_std, shift, shift_relative"):
        _make(kind="benign_drift", column="x", shift=1.0, shift_std=1.0)


def test_duplicate_rows_by_any_factor() -> None:
    frame = _small()
    rng = injection_rng("d", "2013-03-01")
    tripled = _make(kind="duplicate_rows", factor=3).apply(frame, rng)
    assert tripled["x"].tolist() == [1.0, 2.0, 3.0, 6.0] * 3
    # a fractional factor draws the extra copies exactly as the equivalent fraction does
    by_factor = _make(kind="duplicate_rows", factor=2.25).apply(frame, injection_rng("d", "p"))
    draws = injection_rng("d", "p").random(4) < 0.25
    assert by_factor["x"].tolist() == [1.0, 2.0, 3.0, 6.0] * 2 + frame["x"][draws].tolist()
    by_fraction = _make(kind="duplicate_rows", fraction=0.3).apply(frame, injection_rng("d", "q"))
    by_same_factor = _make(kind="duplicate_rows", factor=1.3).apply(frame, injection_rng("d", "q"))
    pd.testing.assert_frame_equal(by_fraction, by_same_factor)
    big = pd.DataFrame({"x": np.arange(20_000.0)})
    grown = _make(kind="duplicate_rows", factor=1.3).apply(big, injection_rng("d", "r"))
    assert len(grown) / len(big) == pytest.approx(1.3, abs=0.01)
    with pytest.raises(ValidationError, match="fraction or factor"):
        _make(kind="duplicate_rows", fraction=0.3, factor=1.3)
    with pytest.raises(ValidationError):
        _make(kind="duplicate_rows", factor=1.0)  # not a duplication


def test_a_code_change_can_break_several_columns() -> None:
    frame = _small()
    change = _make(kind="code_change", source="features", columns=["x", "y"], scale=0.5, offset=1)
    out = change.apply(frame, injection_rng("c", "2013-03-01"))
    assert out["x"].tolist() == [1.5, 2.0, 2.5, 4.0]
    assert out["y"].tolist() == [6.0, 11.0, 16.0, 21.0]
    assert out["k"].tolist() == list("abcd")
    assert change.columns_hit == ("x", "y")
    assert change.column_hit is None  # no single column to credit
    single = _make(kind="code_change", source="features", column="x")
    assert single.columns_hit == ("x",)
    assert single.column_hit == "x"
    assert single.apply(frame, injection_rng("c", "p"))["x"].tolist() == [0.0] * 4
    with pytest.raises(ValidationError, match="exactly one of column or columns"):
        _make(kind="code_change", source="features")
    with pytest.raises(ValidationError, match="exactly one of column or columns"):
        _make(kind="code_change", source="features", column="x", columns=["y"])
    with pytest.raises(InputDataError, match="'z'"):
        _make(kind="code_change", source="features", columns=["x", "z"]).apply(
            frame, injection_rng("c", "q")
        )
