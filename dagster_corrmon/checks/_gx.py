"""Great Expectations 1.x, in process: one ephemeral context per process, created on first use.

Why a module-level singleton: ``import great_expectations`` costs 6–17 s and building a context
plus a pandas datasource is work a check should pay once, not per check or per partition (issue 3's
target: "GX validation must not re-create its context per check"). The context is ephemeral with
in-memory stores, analytics and progress bars off, so nothing is written to disk and nothing is
printed. Every check in the process shares one pandas datasource, one dataframe asset and one
whole-dataframe batch definition; the dataframe is passed per validation as a batch parameter.

Expectations travel as plain dicts (``{"type": ..., "kwargs": ..., "severity": ...}``, GX 1.x's
own JSON shape), so nothing outside this module imports GX, and factories validate their arguments
at definition time without paying the import.
"""

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dagster_corrmon.extras import require
from dagster_corrmon.metadata import to_plain

GX_PURPOSE = "Great Expectations checks (validity rules, a suite, engine='great_expectations')"
_DATASOURCE = "corrmon_pandas"
_ASSET = "frame"
_BATCH_DEFINITION = "whole_frame"

# GX's context is not documented as thread-safe; Dagster's in-process executor is sequential, but a
# user's thread-pool executor is not, so validation is serialised per process.
_LOCK = threading.RLock()
_STATE: dict[str, Any] = {}

# How many offending values to keep per expectation (for the check's metadata).
_SAMPLE_SIZE = 5


@dataclass(frozen=True, kw_only=True)
class ExpectationOutcome:
    """One expectation's result, in plain Python (nothing from GX leaks out).

    ``error`` is set when GX could not evaluate the expectation at all (unknown expectation type,
    invalid arguments, a column missing from the batch); ``success`` is then ``False``.
    """

    expectation_type: str
    kwargs: Mapping[str, Any]
    success: bool
    gx_severity: str = "critical"  # GX 1.x FailureSeverity: critical | warning | info
    column: str | None = None
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_fraction: float | None = None
    observed_value: Any = None
    unexpected_sample: Sequence[Any] = field(default_factory=list[Any])
    error: str | None = None
    label: str | None = None  # the corrmon rule that produced it, if any


def _batch_definition() -> Any:
    """The process-wide whole-dataframe batch definition (creating the context on first call)."""
    with _LOCK:
        if "batch_definition" not in _STATE:
            require("great_expectations", purpose=GX_PURPOSE)
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            context = gx.get_context(
                mode="ephemeral",
                project_config=DataContextConfig(
                    store_backend_defaults=InMemoryStoreBackendDefaults(),
                    analytics_enabled=False,
                    progress_bars=ProgressBarsConfig(globally=False),
                ),
            )
            asset = context.data_sources.add_pandas(_DATASOURCE).add_dataframe_asset(_ASSET)
            _STATE["context"] = context
            _STATE["batch_definition"] = asset.add_batch_definition_whole_dataframe(
                _BATCH_DEFINITION
            )
        return _STATE["batch_definition"]


def context_created() -> bool:
    """Whether this process has built its GX context yet (tests assert it is built once)."""
    return "context" in _STATE


def gx_context() -> Any:
    """The process-wide ephemeral GX context."""
    _batch_definition()
    return _STATE["context"]


def validate_frame(
    frame: pd.DataFrame,
    expectations: Sequence[Mapping[str, Any]],
    *,
    suite_name: str = "corrmon",
    labels: Sequence[str | None] | None = None,
) -> list[ExpectationOutcome]:
    """Validate ``frame`` against ``expectations`` (GX 1.x dicts); one outcome per expectation.

    Invalid expectation configurations become failed outcomes with ``error`` set (GX's own
    ``ExpectationSuite`` constructor would log and silently drop them, which would turn a typo
    into a pass).
    """
    require("great_expectations", purpose=GX_PURPOSE)
    import great_expectations as gx
    from great_expectations.exceptions.exceptions import GreatExpectationsError
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    labels = list(labels) if labels is not None else [None] * len(expectations)
    outcomes: list[ExpectationOutcome | None] = [None] * len(expectations)
    domain_objects: list[Any] = []
    positions: list[int] = []
    for position, spec in enumerate(expectations):
        kwargs = dict(spec.get("kwargs", {}))
        try:
            configuration = ExpectationConfiguration(
                type=str(spec["type"]),
                kwargs=kwargs,
                meta=dict(spec.get("meta") or {}),
                severity=spec.get("severity", "critical"),
            )
            domain_objects.append(configuration.to_domain_obj())
            positions.append(position)
        except (GreatExpectationsError, ValueError, TypeError) as error:
            outcomes[position] = ExpectationOutcome(
                expectation_type=str(spec.get("type")),
                kwargs=to_plain(kwargs),
                success=False,
                column=kwargs.get("column"),
                error=f"invalid expectation configuration: {_one_line(error)}",
                label=labels[position],
            )
    if domain_objects:
        with _LOCK:
            batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
            # Every object here already passed to_domain_obj(), so the suite keeps them all.
            suite = gx.ExpectationSuite(name=suite_name, expectations=domain_objects)
            suite_result = batch.validate(suite, result_format="BASIC")
        for position, result in zip(positions, suite_result.results, strict=True):
            outcomes[position] = _outcome(result, label=labels[position])
    return [outcome for outcome in outcomes if outcome is not None]


def _outcome(result: Any, *, label: str | None) -> ExpectationOutcome:
    configuration = result.expectation_config
    kwargs = {key: value for key, value in configuration.kwargs.items() if key != "batch_id"}
    details = result.result or {}
    error = None
    exception_info = result.exception_info or {}
    # GX reports exceptions either flat or keyed by metric id, depending on where they arose.
    candidates = (
        [exception_info]
        if "raised_exception" in exception_info
        else [info for info in exception_info.values() if isinstance(info, Mapping)]
    )
    for info in candidates:
        if info.get("raised_exception"):
            error = _first_line(info.get("exception_message") or "Great Expectations raised")
            break
    unexpected_percent = details.get("unexpected_percent")
    return ExpectationOutcome(
        expectation_type=str(configuration.type),
        kwargs=to_plain(kwargs),
        success=bool(result.success) and error is None,
        gx_severity=str(getattr(configuration.severity, "value", configuration.severity)),
        column=kwargs.get("column"),
        element_count=_optional_int(details.get("element_count")),
        unexpected_count=_optional_int(details.get("unexpected_count")),
        unexpected_fraction=None if unexpected_percent is None else unexpected_percent / 100.0,
        observed_value=to_plain(details.get("observed_value")),
        unexpected_sample=to_plain(list(details.get("partial_unexpected_list") or []))[
            :_SAMPLE_SIZE
        ],
        error=error,
        label=label,
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _one_line(error: object, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text[:limit] if text else type(error).__name__


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
