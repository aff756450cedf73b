"""The same checks against the real PostgreSQL store (JSONB metadata, aware timestamps)."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from dagster_corrmon.checks import build_data_quality_checks, build_schema_contract_checks
from dagster_corrmon.core.signal import Severity, SignalKind
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.store import CorrmonStore

pytestmark = pytest.mark.postgres


@dg.asset
def readings(context: dg.AssetExecutionContext) -> pd.DataFrame:
    spiked = context.run.tags.get("test/spike") == "1"
    values = np.arange(100, dtype=float)
    if spiked:
        values[:60] = np.nan
    return pd.DataFrame({"value": values, "site": ["a", "b"] * 50})


def test_check_signals_round_trip_through_postgres(postgres_url: str) -> None:
    checks = [
        *build_data_quality_checks(assets=[readings], completeness={"value": 0.1}, volume=True),
        *build_schema_contract_checks(assets=[readings]),
    ]
    resources = {"corrmon": CorrmonResource(database_url=postgres_url)}
    with dg.instance_for_test() as instance:
        clean = dg.materialize([readings, *checks], instance=instance, resources=resources)
        spiked = dg.materialize(
            [readings, *checks], instance=instance, resources=resources, tags={"test/spike": "1"}
        )
    results = {e.check_name: e for e in spiked.get_asset_check_evaluations()}
    assert not results["corrmon_completeness"].passed
    assert results["corrmon_schema_contract"].passed
    with CorrmonStore(postgres_url) as store:
        assert store.dialect == "postgresql"
        fractions = store.read_signals(
            asset_key="readings", name="null_fraction", column="value", kind=SignalKind.DATA_QUALITY
        )
        (contract,) = store.read_signals(asset_key="readings", name="schema_contract")
    assert [(s.run_id, s.value, s.severity) for s in fractions] == [
        (clean.run_id, 0.0, Severity.INFO),
        (spiked.run_id, 0.6, Severity.ERROR),
    ]
    assert fractions[1].metadata["max_null_fraction"] == 0.1
    assert contract.metadata["columns"] == {"value": "float", "site": "string"}
