"""Every fenced code block in README.md and docs/*.md runs, or is checked, as written.

How a docs author marks a block — by its fence's language, nothing else:

* ```python — run. The blocks of one file run in order in one namespace (a later block may use
  what an earlier one defined), in a temporary working directory with ``DAGSTER_HOME`` set to a
  temporary folder. Names a block uses without defining (``my_project_defs``) come from that
  file's preamble in :data:`PREAMBLES` below; add one there when a new block needs one. When the
  namespace ends with ``defs`` (a ``dg.Definitions``), it must be loadable.
* ```yaml — parsed. A whole document of a kind corrmon reads is also validated by the real
  loader: a component ``defs.yaml`` (``type: dagster_corrmon.CorrmonComponent``) is loaded by
  Dagster's component loader next to the hand-written test project's assets; a scenario
  (``base:`` + ``name:``, ``base`` relative to ``dagster_corrmon/scenarios/builtin/``) by
  ``load_scenario``; a ``dagster.yaml`` (``storage:``) by a real Dagster instance. A fragment
  (e.g. one section of a spec) is only parsed.
* ```bash / ```sh — each command (``\\``-continued lines joined, comments dropped) must be cheap
  and is run (``corrmon … --help``), or be listed in
  :data:`LONG_COMMANDS` with the reason it is covered elsewhere (CI runs ``make demo`` and
  ``make test``).
* ```json — an output sample that must parse. ```text — an output sample, not checked.

A block without a language fails the test: pick one of the above.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
BUILTIN_SCENARIOS = ROOT / "dagster_corrmon" / "scenarios" / "builtin"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)

# What a file's python blocks use without defining. README.md: the user's own project, five
# assets named as in the example.
PREAMBLES = {
    "README.md": """
import dagster as dg

@dg.asset
def raw_weather() -> None: ...

@dg.asset(deps=[raw_weather])
def features() -> None: ...

@dg.asset(deps=[features])
def delay_model() -> None: ...

@dg.asset(deps=[features, delay_model])
def predictions() -> None: ...

@dg.asset(deps=[predictions])
def evaluation() -> None: ...

my_project_defs = dg.Definitions(
    assets=[raw_weather, features, delay_model, predictions, evaluation]
)
""",
}

# Commands too long (or needing a server / the network) to run here, with where they are covered.
LONG_COMMANDS: dict[str, str] = {
    "make demo": "CI (.ci/run) runs it; test_scenarios/test_simulate cover its parts",
    "make test": "CI runs it; it is this very suite",
    "make check": "CI runs it",
    "make bench": "a benchmark (minutes); its numbers are in docs/benchmarks.md",
    "make scenarios": "simulates every built-in scenario (tens of minutes); CI-only",
    "CORRMON_TEST_POSTGRES_URL=": "CI runs the suite against PostgreSQL",
    "pip install": "needs the package index; test_install checks the dependency declaration",
    "corrmon simulate": "minutes per scenario; test_simulate runs shortened scenarios",
    "corrmon generate": "trains the spec's model and bootstraps each injection; test_generate",
    "corrmon evaluate": "minutes per scenario; test_fast_path runs the fast and full paths",
    "for scenario in": "a loop of corrmon simulate (listed above) over generated scenarios",
    "done": "the end of that loop",
    "corrmon score .scenarios": "reads a simulation's output; test_scenarios scores real ones",
    "CORRMON_SCENARIO=": "starts the webserver; test_ui_simulated checks what it shows",
    ".venv/bin/python benchmarks/": "a benchmark (minutes); its results are in the doc",
    ".venv/bin/python dagster_corrmon_tests/bench_": "a benchmark; its results are in the doc",
    "dg scaffold defs": "writes into a project; test_component runs it in a temporary one",
    "dg check defs": "needs a project; test_component loads the same defs.yaml",
    "dg list components": "~30 s; test_component runs it in a temporary project",
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    source = path.read_text()
    return [
        Block(path, source.count("\n", 0, match.start()) + 1, match.group(1), match.group(2))
        for match in FENCE.finditer(source)
    ]


def _all(*languages: str) -> list[Block]:
    return [block for path in DOCS for block in _blocks(path) if block.language in languages]


def _ids(blocks: list[Block]) -> list[str]:
    return [block.where for block in blocks]


@pytest.fixture
def docs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("CORRMON_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_block_names_a_known_language() -> None:
    known = {"python", "yaml", "bash", "sh", "json", "text"}
    unknown = [
        f"{block.where}: ```{block.language}"
        for path in DOCS
        for block in _blocks(path)
        if block.language not in known
    ]
    assert not unknown, f"label these blocks with one of {sorted(known)}: {unknown}"


PYTHON_FILES = sorted({block.path for block in _all("python")})


@pytest.mark.parametrize("path", PYTHON_FILES, ids=[p.name for p in PYTHON_FILES])
def test_python_blocks_run(path: Path, docs_env: Path) -> None:
    namespace: dict[str, object] = {"__name__": "docs_block"}
    exec(compile(PREAMBLES.get(path.name, ""), f"{path.name} preamble", "exec"), namespace)
    for block in _blocks(path):
        if block.language == "python":
            exec(compile(block.text, block.where, "exec"), namespace)
    defs = namespace.get("defs")
    if isinstance(defs, dg.Definitions):
        dg.Definitions.validate_loadable(defs)


YAML_BLOCKS = _all("yaml")


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=_ids(YAML_BLOCKS))
def test_yaml_blocks_parse_and_load(block: Block, docs_env: Path) -> None:
    document = yaml.safe_load(block.text)
    if not isinstance(document, dict):
        return
    if document.get("type") == "dagster_corrmon.CorrmonComponent":
        _load_component(block.text)
    elif "base" in document and "name" in document:
        from dagster_corrmon.scenarios.spec import load_scenario

        document["base"] = str((BUILTIN_SCENARIOS / document["base"]).resolve())
        scenario = docs_env / "scenario.yaml"
        scenario.write_text(yaml.safe_dump(document))
        load_scenario(scenario)
    elif "storage" in document:
        with dg.instance_for_test(overrides=document):
            pass


def _load_component(text: str) -> None:
    from dagster.components.testing import create_defs_folder_sandbox

    with create_defs_folder_sandbox() as sandbox:
        (sandbox.defs_folder_path / "assets.py").write_text(
            "import dagster as dg\n"
            "from dagster_corrmon_tests.handwritten_project import ASSETS\n\n\n"
            "@dg.definitions\n"
            "def defs() -> dg.Definitions:\n"
            "    return dg.Definitions(assets=ASSETS)\n"
        )
        folder = sandbox.defs_folder_path / "corrmon"
        folder.mkdir()
        (folder / "defs.yaml").write_text(text)
        with sandbox.build_all_defs() as defs:
            dg.Definitions.validate_loadable(defs)
            checks = defs.resolve_asset_graph().asset_check_keys
            assert dg.AssetCheckKey(dg.AssetKey("delay_model"), "corrmon_incident") in checks


JSON_BLOCKS = _all("json")


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=_ids(JSON_BLOCKS))
def test_json_samples_parse(block: Block) -> None:
    json.loads(block.text)


def _commands(block: Block) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", block.text)
    commands = []
    for line in joined.splitlines():
        command = line.split(" #")[0].strip()
        if command and not command.startswith("#"):
            commands.append(command)
    return commands


BASH_COMMANDS = [(block, command) for block in _all("bash", "sh") for command in _commands(block)]


@pytest.mark.parametrize(
    ("block", "command"),
    BASH_COMMANDS,
    ids=[f"{block.where}: {command[:40]}" for block, command in BASH_COMMANDS],
)
def test_bash_commands_run_or_are_listed(block: Block, command: str, docs_env: Path) -> None:
    if any(command.startswith(prefix) for prefix in LONG_COMMANDS):
        return
    argv = shlex.split(command)
    cheap = argv[0] == "corrmon" and "--help" in argv
    assert cheap, (
        f"{block.where}: {command!r} is neither cheap (corrmon … --help) nor listed in "
        "LONG_COMMANDS with the reason it is covered elsewhere"
    )
    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert result.returncode == 0, f"{block.where}: {command}\n{result.stderr}"
