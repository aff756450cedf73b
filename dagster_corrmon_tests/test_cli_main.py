"""``corrmon --help`` stays fast: it imports no command module, hence neither Dagster nor the
data stack; the registry's one-line summaries are the commands' own."""

import importlib
import json
import subprocess
import sys

from dagster_corrmon.cli.main import _COMMANDS

HEAVY = ("dagster", "pandas", "numpy", "scipy", "sqlalchemy", "pydantic", "great_expectations")


def test_help_imports_no_heavy_module() -> None:
    script = (
        "import sys, json\n"
        "from dagster_corrmon.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    help_text, _, modules_line = result.stdout.rpartition("\n[")
    modules = json.loads("[" + modules_line)
    assert "Commands:" in help_text and "drift" in help_text
    heavy = sorted(name for name in modules if name.split(".")[0] in HEAVY)
    assert not heavy, heavy
    assert not [
        name
        for name in modules
        if name.startswith("dagster_corrmon.cli.") and (name != "dagster_corrmon.cli.main")
    ]


def test_each_summary_is_the_commands_own_first_line() -> None:
    for name, command in _COMMANDS.items():
        module_name, attribute = command.target.split(":")
        target = getattr(importlib.import_module(module_name), attribute)
        assert target.name == name
        assert command.summary == target.get_short_help_str(limit=1000), name
