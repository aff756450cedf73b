"""Scenario specs: a monitored-pipeline spec plus labelled incidents and expectations.

A scenario *extends* a pipeline spec rather than repeating it: ``base: flights.yaml`` loads that
spec (relative to the scenario's folder) and the scenario's own keys are deep-merged over it, so
a scenario file says only what differs — its incidents, its window, its expectations.
"""

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from dagster_corrmon.errors import ConfigError
from dagster_corrmon.pipeline.spec import (
    PipelineSpec,
    SpecError,
    SpecModel,
    _SpecLoader,  # pyright: ignore[reportPrivateUsage]
    _yaml_lines,  # pyright: ignore[reportPrivateUsage]
    parse_spec,
)
from dagster_corrmon.scenarios.injections import Injection


class ExpectedCause(SpecModel):
    """Where the top-ranked cause must point: an injection's feed (and column)."""

    injection: str = Field(description="The id of the injection this incident comes from.")
    classification: list[str] | None = Field(
        default=None, description="Acceptable classifications (any of them)."
    )
    consequential: bool = True
    detect_within: int = Field(default=1, ge=0, description="Partitions after the onset.")


class ExpectSpec(SpecModel):
    """What a correct run of the scenario concludes (used by tests and ``corrmon score``)."""

    control: bool = Field(
        default=False, description="No consequential incident may be raised (clean / benign)."
    )
    incidents: list[ExpectedCause] = Field(default_factory=list)
    retrain: Literal["required", "forbidden"] | None = None


class RetrainingSpec(SpecModel):
    """The retraining policy the simulation applies."""

    on_concept_drift: bool = True
    cooldown_partitions: int = Field(default=7, ge=0)
    window_partitions: int | None = Field(
        default=None, ge=1, description="Recent partitions a retrain uses; default: as training."
    )


class SimulationSpec(SpecModel):
    """Which partitions to simulate (defaults: from the end of training to the end)."""

    start: dt.date | None = None
    end: dt.date | None = Field(default=None, description="Exclusive.")
    seed: int = 0
    min_reference: int | None = Field(
        default=None, ge=3, description="Metric partitions before attribution judges a shift."
    )


class ScenarioSpec(PipelineSpec):
    """A pipeline spec plus ``incidents``, ``expect``, ``retraining`` and ``simulation``."""

    base: str | None = Field(default=None, description="The pipeline spec this one extends.")
    incidents: list[Injection] = Field(default_factory=list)
    expect: ExpectSpec = Field(default_factory=ExpectSpec)
    retraining: RetrainingSpec = Field(default_factory=RetrainingSpec)
    simulation: SimulationSpec = Field(default_factory=SimulationSpec)

    @model_validator(mode="after")
    def _check_incidents(self) -> "ScenarioSpec":
        sources = {source.name for source in self.sources}
        ids: set[str] = set()
        numbered: list[Any] = []
        for index, injection in enumerate(self.incidents):
            injection_id = injection.id or f"{injection.kind}-{index + 1}"
            if injection_id in ids:
                raise ValueError(f"incidents[{index}]: id {injection_id!r} is used twice")
            ids.add(injection_id)
            if injection.kind not in ("code_change", "label_delay") and (
                injection.source not in sources
            ):
                raise ValueError(
                    f"incidents[{index}] ({injection_id}): source {injection.source!r} is not "
                    f"one of the spec's sources ({', '.join(sorted(sources))})"
                )
            numbered.append(injection.model_copy(update={"id": injection_id}))
        object.__setattr__(self, "incidents", numbered)
        for expected in self.expect.incidents:
            if expected.injection not in ids:
                raise ValueError(
                    f"expect.incidents: no injection with id {expected.injection!r} "
                    f"(ids: {', '.join(sorted(ids)) or 'none'})"
                )
        return self


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read scenario spec {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"scenario spec {path} is not UTF-8 text (byte {error.start}): a YAML file?"
        ) from None
    try:
        data = yaml.load(text, Loader=_SpecLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise SpecError(str(path), [("", line, f"not valid YAML: {error.problem}")]) from None
    except yaml.YAMLError as error:  # the reader's: control characters, a NUL
        raise SpecError(str(path), [("", None, f"not valid YAML: {error}")]) from None
    if not isinstance(data, dict):
        raise SpecError(str(path), [("", 1, "a scenario must be a mapping of sections")])
    return data, text


def scenario_document(path: Path | str) -> tuple[dict[str, Any], str]:
    """A scenario YAML with its ``base:`` spec merged in (what ``docs/scenario.schema.json``
    describes), and the scenario file's own text."""
    path = Path(path)
    data, text = _read_yaml(path)
    base_name = data.get("base")
    if base_name is not None:
        base_path = (path.parent / str(base_name)).resolve()
        base_data, _ = _read_yaml(base_path)
        if "base" in base_data:
            raise ConfigError(f"{base_path}: a base spec cannot itself have a base")
        for source in base_data.get("sources", []):
            if isinstance(source, dict) and isinstance(source.get("path"), str):
                source["path"] = str((base_path.parent / source["path"]).resolve())
        data = _deep_merge(base_data, data)
    return data, text


def load_scenario(path: Path | str) -> ScenarioSpec:
    """Load a scenario YAML (following ``base:``); errors name the key and line."""
    path = Path(path)
    data, text = scenario_document(path)
    return parse_spec(
        data,
        base_dir=path.parent.resolve(),
        spec_class=ScenarioSpec,
        origin=str(path),
        lines=_yaml_lines(text),
    )
