"""Who owns an asset, and which group it is in — from the Dagster asset graph.

Owners and groups are declared once, on the user's assets (``owners=["team:ml"]``,
``group_name=...``); alerting reads them from the repository the correlation run belongs to.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg


@dataclass(frozen=True, kw_only=True)
class AssetInfo:
    owners: tuple[str, ...] = ()
    group: str | None = None


@dataclass(frozen=True, kw_only=True)
class AssetDirectory:
    """Owners and group per asset (user strings); unknown assets have neither."""

    assets: Mapping[str, AssetInfo] = field(default_factory=dict[str, AssetInfo])

    def info(self, asset_key: str) -> AssetInfo:
        return self.assets.get(asset_key, AssetInfo())


def directory_from_repository(repository: Any) -> AssetDirectory:
    """Every asset's owners and group from ``repository_def.asset_graph``.

    Typed loosely: the asset-graph class is not part of Dagster's public API (its nodes'
    ``owners`` and ``group_name`` are what ``AssetSpec`` declared).
    """
    graph = repository.asset_graph
    assets: dict[str, AssetInfo] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets[key.to_user_string()] = AssetInfo(
            owners=tuple(node.owners or ()), group=node.group_name
        )
    return AssetDirectory(assets=assets)


def directory_for(context: dg.OpExecutionContext) -> AssetDirectory:
    """The run's asset directory; empty when the run has no repository (a bare in-process job)."""
    try:
        repository = context.repository_def
    except dg.DagsterInvariantViolationError:
        return AssetDirectory()
    except Exception as error:
        # Dagster raises its internal CheckError when the context has no repository.
        if type(error).__name__ != "CheckError":
            raise
        return AssetDirectory()
    return directory_from_repository(repository) if repository is not None else AssetDirectory()
