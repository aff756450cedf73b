"""The pure core: statistics, profiles, metrics, baselines, change points, attribution.

Imports only numpy, scipy and pandas. Never reads a clock, an environment variable or a database:
time and data come in as arguments. Reusable outside Dagster.
"""
