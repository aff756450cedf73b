"""The wrappers around Dagster's non-public instance calls, on a real instance."""

from typing import Any

import dagster as dg
import pytest

from dagster_corrmon import instance_api


@dg.asset
def feed() -> int:
    return 1


@dg.asset_check(asset=feed)
def feed_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_check_executions_after_reads_only_what_is_new_across_pages() -> None:
    key = dg.AssetCheckKey(dg.AssetKey("feed"), "feed_ok")
    with dg.instance_for_test() as instance:
        for _ in range(5):
            assert dg.materialize([feed, feed_ok], instance=instance).success
        everything = instance_api.check_executions_after(
            instance, key, after_id=0, first_page=1, max_page=2
        )
        ids = [record.id for record in everything]
        assert len(ids) == 5 and ids == sorted(ids, reverse=True)  # newest first, all pages
        newer = instance_api.check_executions_after(
            instance, key, after_id=ids[3], first_page=1, max_page=2
        )
        assert [record.id for record in newer] == ids[:3]
        assert instance_api.check_executions_after(instance, key, after_id=ids[0]) == []


def test_check_executions_after_reads_one_small_page_when_one_execution_is_new(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sensor tick that finds one new execution reads one page of two records, not a fixed
    page of history; pages grow (doubling) only while every record read is new."""
    key = dg.AssetCheckKey(dg.AssetKey("feed"), "feed_ok")
    with dg.instance_for_test() as instance:
        for _ in range(12):
            assert dg.materialize([feed, feed_ok], instance=instance).success
        storage = instance.event_log_storage
        read = storage.get_asset_check_execution_history
        limits: list[int] = []

        def counted(check_key: dg.AssetCheckKey, limit: int, cursor: int | None = None) -> Any:
            limits.append(limit)
            return read(check_key, limit=limit, cursor=cursor)

        monkeypatch.setattr(storage, "get_asset_check_execution_history", counted)
        ids = [r.id for r in instance_api.check_executions_after(instance, key, after_id=0)]
        assert len(ids) == 12 and limits == [2, 4, 8]  # 2 + 4 + 8 records cover all 12
        limits.clear()
        new = instance_api.check_executions_after(instance, key, after_id=ids[1])
        assert [r.id for r in new] == ids[:1] and limits == [2]


DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-10")


@dg.asset(partitions_def=DAYS)
def daily() -> int:
    return 1


def test_materialized_partitions_answers_for_exactly_the_partitions_asked() -> None:
    with dg.instance_for_test() as instance:
        for day in ["2024-01-02"] * 5 + ["2024-01-03", "2024-01-05"]:
            assert dg.materialize([daily], instance=instance, partition_key=day).success
        asked = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
        found = instance_api.materialized_partitions(instance, daily.key, asked)
        # Five materializations of one partition do not hide another; 01-05 was not asked.
        assert found == {"2024-01-02", "2024-01-03"}
        assert instance_api.materialized_partitions(instance, daily.key, []) == set()


def test_all_materializations_of_some_partitions_pages_through_them() -> None:
    with dg.instance_for_test() as instance:
        for day in ["2024-01-02"] * 3 + ["2024-01-03"] * 2 + ["2024-01-04"]:
            assert dg.materialize([daily], instance=instance, partition_key=day).success
        records = instance_api.all_materializations(
            instance, daily.key, partitions=["2024-01-02", "2024-01-03"], page_size=2
        )
        assert [r.partition for r in records] == ["2024-01-02"] * 3 + ["2024-01-03"] * 2
        ids = [r.storage_id for r in records]
        assert ids == sorted(ids)
        later = instance_api.all_materializations(instance, daily.key, from_storage_id=ids[3])
        assert [r.storage_id for r in later][:2] == ids[3:5]
