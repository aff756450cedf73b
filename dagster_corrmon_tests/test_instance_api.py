"""The wrappers around Dagster's non-public instance calls, on a real instance."""

import dagster as dg

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
        everything = instance_api.check_executions_after(instance, key, after_id=0, page=2)
        ids = [record.id for record in everything]
        assert len(ids) == 5 and ids == sorted(ids, reverse=True)  # newest first, all pages
        newer = instance_api.check_executions_after(instance, key, after_id=ids[3], page=2)
        assert [record.id for record in newer] == ids[:3]
        assert instance_api.check_executions_after(instance, key, after_id=ids[0]) == []
