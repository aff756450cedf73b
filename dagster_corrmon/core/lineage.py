"""Lineage and provenance as pure graph functions.

Two questions the attribution and annotation layers ask, answered without Dagster:

* *Which assets could have caused a model's shift, and how far away are they?* —
  :func:`ancestors_with_distance` walks an ``{asset: [upstream assets]}`` mapping breadth-first
  and returns the fewest hops from the model to every ancestor. Fewer hops means fewer places
  where a defect can be absorbed or masked, so attribution uses the distance as a prior.
* *Which runs consumed a faulty data version?* — :func:`runs_consuming` follows provenance
  records (each materialization with the exact upstream data versions it read) from the faulty
  versions forward, transitively: a scoring run that read a model trained on bad features is
  affected even though it never read the features itself. Only exact version matches count,
  so runs that read a good version of the same asset are never flagged.

The Dagster layer builds the mapping from its asset graph and the records from the
``dagster/input_data_version/<asset key>`` tags; here everything is plain strings.
"""

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dagster_corrmon.errors import InputDataError


def ancestors_with_distance(
    upstream: Mapping[str, Iterable[str]], asset: str, *, max_distance: int | None = None
) -> dict[str, int]:
    """Every ancestor of ``asset`` with its shortest distance in hops (direct parent = 1).

    ``upstream`` maps each asset to its direct upstream assets; assets missing from it are
    roots. Cycles are tolerated (each asset is visited once) and ``asset`` itself is never its
    own ancestor. ``max_distance`` stops the walk, for very deep graphs.
    """
    if max_distance is not None and max_distance < 0:
        raise InputDataError(f"max_distance must be >= 0, got {max_distance}")
    distances: dict[str, int] = {}
    frontier: deque[tuple[str, int]] = deque([(asset, 0)])
    seen = {asset}
    while frontier:
        node, hops = frontier.popleft()
        if max_distance is not None and hops >= max_distance:
            continue
        for parent in upstream.get(node, ()):
            if parent in seen:
                continue
            seen.add(parent)
            distances[parent] = hops + 1
            frontier.append((parent, hops + 1))
    return distances


def descendants_with_distance(
    upstream: Mapping[str, Iterable[str]], asset: str, *, max_distance: int | None = None
) -> dict[str, int]:
    """Every descendant of ``asset`` with its shortest distance in hops (direct child = 1).

    The mirror of :func:`ancestors_with_distance` on the same ``{asset: [upstream]}`` mapping:
    which models sit downstream of a faulty feed, used to flag them *at risk* before labels
    arrive.
    """
    downstream: dict[str, list[str]] = {}
    for child, parents in upstream.items():
        for parent in parents:
            downstream.setdefault(parent, []).append(child)
    return ancestors_with_distance(downstream, asset, max_distance=max_distance)


@dataclass(frozen=True, kw_only=True)
class ProvenanceRecord:
    """One materialization and the exact upstream data versions it consumed.

    ``data_version`` is the version this materialization produced (``None`` if unknown: then
    nothing downstream can be traced through it). ``input_data_versions`` maps upstream asset
    keys to the version read, as in Dagster's ``dagster/input_data_version/<key>`` tags.
    """

    run_id: str
    asset_key: str
    data_version: str | None
    input_data_versions: Mapping[str, str] = field(default_factory=dict[str, str])
    partition: str | None = None


@dataclass(frozen=True, kw_only=True)
class AffectedMaterialization:
    """A materialization that consumed a faulty version, directly or through other runs.

    ``via`` is the (asset key, data version) it read that was faulty; ``hops`` counts the
    materializations between it and an originally faulty version (1 = read it directly).
    """

    record: ProvenanceRecord
    via: tuple[str, str]
    hops: int


def runs_consuming(
    records: Iterable[ProvenanceRecord], faulty_versions: Iterable[tuple[str, str]]
) -> list[AffectedMaterialization]:
    """The materializations that consumed any of ``faulty_versions``, transitively.

    ``faulty_versions`` are ``(asset key, data version)`` pairs. A materialization is affected
    when one of its inputs is faulty; what it produced then counts as faulty too, so its own
    consumers are found in turn (training on bad features taints the model version, and every
    scoring run that loaded that model version). The materializations that *produced* the
    original faulty versions are not included: they are the source, not a victim.

    Each affected materialization appears once, at its fewest hops; the result is sorted by
    hops, then run id and asset key. Group by ``record.run_id`` for the affected runs.
    """
    consumers: dict[tuple[str, str], list[ProvenanceRecord]] = {}
    for record in records:
        for upstream_key, version in record.input_data_versions.items():
            consumers.setdefault((upstream_key, version), []).append(record)

    affected: dict[tuple[str, str, str | None, str | None], AffectedMaterialization] = {}
    tainted = set(faulty_versions)
    frontier: deque[tuple[tuple[str, str], int]] = deque((version, 1) for version in tainted)
    while frontier:
        version, hops = frontier.popleft()
        for record in consumers.get(version, ()):
            identity = (record.run_id, record.asset_key, record.partition, record.data_version)
            if identity in affected:
                continue
            affected[identity] = AffectedMaterialization(record=record, via=version, hops=hops)
            if record.data_version is None:
                continue
            produced = (record.asset_key, record.data_version)
            if produced not in tainted:
                tainted.add(produced)
                frontier.append((produced, hops + 1))
    return sorted(
        affected.values(),
        key=lambda item: (item.hops, item.record.run_id, item.record.asset_key),
    )


def affected_run_ids(
    records: Iterable[ProvenanceRecord], faulty_versions: Iterable[tuple[str, str]]
) -> frozenset[str]:
    """The ids of the runs with at least one materialization in :func:`runs_consuming`."""
    return frozenset(item.record.run_id for item in runs_consuming(records, faulty_versions))
