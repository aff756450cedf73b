"""Reading a Dagster home back through the UI's own GraphQL API: the queries and helpers the UI
tests share (a hand-written project in ``test_ui_graphql``, a simulated history in
``test_ui_simulated``).

A code location is served the way ``dagster dev`` serves it — a ``workspace.yaml`` naming a
``python_module``, loaded by a real code-server subprocess — and asked what the UI's pages ask.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster._core.workspace.context import WorkspaceRequestContext
from dagster_graphql.test.utils import execute_dagster_graphql

EVALUATION_FRAGMENT = """
fragment Evaluation on AssetCheckEvaluation {
  success
  severity
  description
  partition
  metadataEntries {
    label
    __typename
    ... on MarkdownMetadataEntry { mdStr }
    ... on TextMetadataEntry { text }
    ... on IntMetadataEntry { intValue }
    ... on FloatMetadataEntry { floatValue }
    ... on BoolMetadataEntry { boolValue }
    ... on UrlMetadataEntry { url }
  }
}
"""

CHECKS_QUERY = (
    """
query AssetChecks($assetKey: AssetKeyInput!) {
  assetNodes(assetKeys: [$assetKey]) {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          description
          executionForLatestMaterialization {
            runId
            status
            partition
            evaluation { ...Evaluation }
          }
          partitionStatuses {
            __typename
            ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
          }
        }
      }
    }
  }
}
"""
    + EVALUATION_FRAGMENT
)

CHECK_HISTORY_QUERY = (
    """
query CheckHistory($assetKey: AssetKeyInput!, $checkName: String!, $partition: String) {
  assetCheckExecutions(
    assetKey: $assetKey, checkName: $checkName, partition: $partition, limit: 100
  ) {
    runId
    status
    partition
    evaluation { ...Evaluation }
  }
}
"""
    + EVALUATION_FRAGMENT
)

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status jobName tags { key value } } }
  }
}
"""


def write_workspace(path: Path, *, module: str, location: str) -> Path:
    """A ``workspace.yaml`` loading ``module``'s ``defs`` as the code location ``location``."""
    entry = {
        "python_module": {"module_name": module, "attribute": "defs", "location_name": location}
    }
    path.write_text(yaml.safe_dump({"load_from": [entry]}))
    return path


def query(
    context: WorkspaceRequestContext, text: str, variables: Mapping[str, Any]
) -> dict[str, Any]:
    result = execute_dagster_graphql(context, text, dict(variables))
    assert not result.errors, result.errors
    assert result.data is not None
    return dict(result.data)


def metadata(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata entries by label, each as the one value its entry type carries."""
    values: dict[str, Any] = {}
    for entry in evaluation["metadataEntries"]:
        fields = {k: v for k, v in entry.items() if k not in ("label", "__typename")}
        assert len(fields) == 1, entry  # a type the fragment does not read would come back empty
        values[entry["label"]] = next(iter(fields.values()))
    return values


def checks(context: WorkspaceRequestContext, asset: str) -> dict[str, dict[str, Any]]:
    """The asset's Checks tab: every declared check by name."""
    nodes = query(context, CHECKS_QUERY, {"assetKey": {"path": [asset]}})["assetNodes"]
    assert [node["assetKey"]["path"] for node in nodes] == [[asset]], "asset not in the location"
    found = nodes[0]["assetChecksOrError"]
    assert found["__typename"] == "AssetChecks", found
    return {check["name"]: check for check in found["checks"]}


def check_history(
    context: WorkspaceRequestContext, asset: str, check: str, *, partition: str | None = None
) -> list[dict[str, Any]]:
    """A check's executions, newest first (of one partition, if given)."""
    variables = {"assetKey": {"path": [asset]}, "checkName": check, "partition": partition}
    return list(query(context, CHECK_HISTORY_QUERY, variables)["assetCheckExecutions"])


def runs(context: WorkspaceRequestContext, runs_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Runs page under a ``RunsFilter``."""
    found = query(context, RUNS_QUERY, {"filter": dict(runs_filter)})["runsOrError"]
    assert found["__typename"] == "Runs", found
    return list(found["results"])


def runs_tagged(context: WorkspaceRequestContext, key: str, value: str) -> list[dict[str, Any]]:
    return runs(context, {"tags": [{"key": key, "value": value}]})


def tags(run: Mapping[str, Any]) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["tags"]}
