"""Content hashes: the data versions and code versions of the lineage assets.

A data version is a hash of what an asset *produced*, so two materializations with equal content
share a version and a changed batch gets a new one — exactly the "upstream data changed" signal the
correlation engine reads from ``dagster/data_version`` and ``dagster/input_data_version/<key>``.
"""

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, cast

import pandas as pd
from pandas import util as pandas_util

#: Bumped when the builder's own transformation code changes meaning, so every asset's
#: ``code_version`` changes with it.
BUILDER_VERSION = "1"
_DATA_VERSION_HEX = 32
# the public pd.util.hash_pandas_object, typed (its decorators hide the signature from pyright)
_hash_rows = cast(Callable[..., pd.Series], pandas_util.hash_pandas_object)


def frame_data_version(frame: pd.DataFrame, *, columns: Sequence[str] | None = None) -> str:
    """A content hash of a frame: column names, dtypes and every value (row order matters).

    ``columns`` restricts the hash to the deterministic part of an output (predictions leave out
    their measured latencies, which differ on every run of the same input).
    """
    part = frame if columns is None else frame.loc[:, list(columns)]
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in part.dtypes.items()]).encode())
    digest.update(str(len(part)).encode())
    if len(part) and len(part.columns):
        digest.update(_hash_rows(part, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:_DATA_VERSION_HEX]


def bytes_data_version(*chunks: bytes) -> str:
    """A content hash of opaque bytes (a pickled estimator)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()[:_DATA_VERSION_HEX]


def code_version(role: str, *parts: Any) -> str:
    """A stable short hash of an asset's role, the builder version and its spec fragments."""
    payload = json.dumps([BUILDER_VERSION, role, *parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
