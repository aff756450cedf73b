"""Reports built from the store for people: the joined dashboard.

Nothing here imports Dagster; the store is the only input, so a report can be rebuilt from a copied
database long after the runs that wrote it.
"""
