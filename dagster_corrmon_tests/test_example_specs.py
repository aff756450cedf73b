"""The example registry: every registered spec file exists and loads."""

import pytest

from dagster_corrmon.errors import ConfigError
from dagster_corrmon.examples import SPECS, spec_path
from dagster_corrmon.pipeline import load_spec


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_registered_spec_loads(name: str) -> None:
    spec = load_spec(spec_path(name))
    assert spec.name == name


def test_an_unknown_example_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"known: .*flights"):
        spec_path("nope")
