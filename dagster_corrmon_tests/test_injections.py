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
