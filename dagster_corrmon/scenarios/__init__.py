"""The scenario lab: run a monitored pipeline over real data, inject labelled incidents, score."""
