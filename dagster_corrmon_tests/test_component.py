"""``CorrmonComponent`` loaded the way ``dg`` loads it: a ``defs.yaml`` in a project's defs folder,
next to the hand-written test project's plain ``@dg.asset``s, through Dagster's own component
loading (``dagster.components.testing.create_defs_folder_sandbox``)."""

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

import dagster_corrmon as cm
from dagster_corrmon.components import CorrmonComponent
from dagster_corrmon.store import CorrmonStore
from dagster_corrmon_tests import handwritten_project as project

ASSETS_MODULE = """
import dagster as dg

from dagster_corrmon_tests.handwritten_project import ASSETS


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=ASSETS)
"""

DEFS_YAML = """\
type: dagster_corrmon.CorrmonComponent
attributes:
  database_url: {database_url}
  partitions:
    type: daily
    start_date: "2024-01-01"
    end_date: "2024-03-01"
  models:
    - model: delay_model
      evaluation: predictions
      predictions: predictions
      metric: roc_auc
  checks:
    - asset: weather
      quality:
        completeness: {{temp_f: 0.05}}
        validity:
          - {{rule: range, column: temp_f, min_value: -40, max_value: 130}}
          - {{rule: allowed_values, column: station, values: [EWR, JFK, LGA]}}
        baseline: {{min_history: 4}}
      schema_contract: {{}}
      freshness:
        lookback_partitions: 3
    - asset: features
      drift:
        reference: delay_model
        feature_importance: from_reference_asset
        threshold: 0.25
    - asset: predictions
      model_evaluation:
        label_column: delayed
        score_column: score
        n_resamples: 200
  retrain:
    cooldown: P14D
    schedule: "0 6 * * 1"
"""


@contextmanager
def _loaded(defs_yaml: str) -> Iterator[tuple[dg.Component, dg.Definitions]]:
    with create_defs_folder_sandbox() as sandbox:
        (sandbox.defs_folder_path / "assets.py").write_text(ASSETS_MODULE)
        folder = sandbox.defs_folder_path / "corrmon"
        folder.mkdir()
        (folder / "defs.yaml").write_text(defs_yaml)
        with sandbox.build_component_tree() as tree:
            yield tree.load_component(folder), tree.build_defs()


def _check_keys(defs: dg.Definitions) -> set[dg.AssetCheckKey]:
    return set(defs.resolve_asset_graph().asset_check_keys)


def test_defs_yaml_builds_the_same_checks_as_the_python_factories(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'corrmon.db'}"
    with _loaded(DEFS_YAML.format(database_url=url)) as (component, defs):
        assert isinstance(component, CorrmonComponent)
        dg.Definitions.validate_loadable(defs)
        checks = _check_keys(defs)
        sensors = {sensor.name for sensor in defs.sensors or []}
        schedules = [schedule.name for schedule in defs.schedules or []]
        resource = (defs.resources or {})["corrmon"]

    # What a Python user writes for the same attachment (the README's route).
    python = cm.build_corrmon_defs(
        models=[
            cm.MonitoredModel(
                model=dg.AssetKey("delay_model"),
                evaluation=dg.AssetKey("predictions"),
                predictions=dg.AssetKey("predictions"),
            )
        ],
        data_checks=cm.bundle_checks(
            [
                *cm.build_data_quality_checks(
                    assets=[project.weather],
                    completeness={"temp_f": 0.05},
                    validity=[cm.InRange(column="temp_f", min_value=-40, max_value=130)],
                ),
                *cm.build_schema_contract_checks(assets=[project.weather]),
                *cm.build_freshness_checks(assets=[project.weather], lookback_partitions=3),
                *cm.build_drift_checks(
                    assets=[project.features],
                    reference=dg.AssetKey("delay_model"),
                    feature_importance="from_reference_asset",
                ),
                *cm.build_model_evaluation_checks(
                    asset=project.predictions, label_column="delayed", score_column="score"
                ),
            ]
        ),
        retrain_schedule="0 6 * * 1",
    )
    expected = set(
        dg.Definitions.merge(dg.Definitions(assets=project.ASSETS), python)
        .resolve_asset_graph()
        .asset_check_keys
    )
    assert checks == expected
    assert dg.AssetCheckKey(dg.AssetKey("delay_model"), "corrmon_incident") in checks
    assert {name for name in sensors if name.startswith("corrmon")} == {
        sensor.name for sensor in python.sensors or []
    }
    assert len(schedules) == 1
    assert isinstance(resource, cm.CorrmonResource)
    assert resource.database_url == url


def test_checks_from_defs_yaml_run_and_write_signals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'corrmon.db'}"
    with (
        _loaded(DEFS_YAML.format(database_url=url)) as (_, defs),
        dg.instance_for_test() as instance,
    ):
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=instance,
            partition_key="2024-01-10",
            asset_selection=[dg.AssetKey("weather")],
        )
        assert result.success
        evaluations = {
            evaluation.check_name: evaluation.passed
            for evaluation in result.get_asset_check_evaluations()
        }
    assert set(evaluations) == {
        "corrmon_completeness",
        "corrmon_validity",
        "corrmon_volume",
        "corrmon_schema_contract",
        "corrmon_freshness",
    }
    assert evaluations["corrmon_completeness"] and evaluations["corrmon_validity"]
    # the three partitions before it were never delivered
    assert not evaluations["corrmon_freshness"]
    signals = CorrmonStore(url).read_signals(asset_key="weather")
    partitions = {signal.partition for signal in signals}
    # the freshness check also records the missing partitions of its lookback window
    assert "2024-01-10" in partitions
    assert partitions <= {"2024-01-07", "2024-01-08", "2024-01-09", "2024-01-10"}


@pytest.mark.parametrize(
    ("broken", "line", "message"),
    [
        # an unknown key, caught by Dagster's own resolution of the attributes: it names the
        # key path (models.0.metrc) at the line of the top-level key (`models:`)
        ("      metric: roc_auc\n", 8, "models.list[ModelEntry].0.metrc"),
        # a value the factory rejects, re-raised with the entry's line
        ("        threshold: 0.25\n", 28, "threshold"),
    ],
)
def test_a_bad_defs_yaml_names_its_line(tmp_path: Path, broken: str, line: int, message: str):
    url = f"sqlite:///{tmp_path / 'corrmon.db'}"
    good = DEFS_YAML.format(database_url=url)
    assert broken in good
    bad = good.replace(broken, broken.replace("metric:", "metrc:").replace("0.25", "-1"), 1)
    with pytest.raises(Exception) as caught, _loaded(bad):
        pass
    # what `dg check defs` prints: the loader's tree, then the cause
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = error.__cause__ or error.__context__
    text = "\n".join(str(error) for error in chain)
    assert f"defs.yaml:{line}" in text, text
    assert message in text


def test_dg_scaffold_writes_a_defs_yaml_that_loads() -> None:
    with create_defs_folder_sandbox() as sandbox:
        (sandbox.defs_folder_path / "assets.py").write_text(ASSETS_MODULE)
        path = sandbox.scaffold_component(
            component_cls=CorrmonComponent,
            defs_path="corrmon",
            scaffold_params={"model": "delay_model", "evaluation": "predictions"},
        )
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, CorrmonComponent)
            assert dg.AssetCheckKey(dg.AssetKey("delay_model"), "corrmon_incident") in (
                _check_keys(defs)
            )


def test_the_top_level_name_is_the_component() -> None:
    assert cm.CorrmonComponent is CorrmonComponent
    assert "CorrmonComponent" in dir(cm)
    assert textwrap.dedent(CorrmonComponent.__doc__ or "").strip()


def test_dg_lists_and_scaffolds_the_component(tmp_path: Path) -> None:
    """The real ``dg`` CLI finds the component through the package's entry point."""
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "my_project"
            version = "0.0.1"

            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "my_project"
            """
        )
    )
    (tmp_path / "src" / "my_project" / "defs").mkdir(parents=True)
    dg_cli = Path(sys.executable).with_name("dg")
    listed = subprocess.run(
        [dg_cli, "list", "components", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    keys = {item["key"] for item in json.loads(listed.stdout)["items"]}
    assert "dagster_corrmon.CorrmonComponent" in keys
    subprocess.run(
        [dg_cli, "scaffold", "defs", "dagster_corrmon.CorrmonComponent", "corrmon"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    written = yaml.safe_load(
        (tmp_path / "src" / "my_project" / "defs" / "corrmon" / "defs.yaml").read_text()
    )
    assert written == {
        "type": "dagster_corrmon.CorrmonComponent",
        "attributes": {
            "models": [{"model": "my_model", "evaluation": "my_evaluation"}],
            "checks": [],
        },
    }
