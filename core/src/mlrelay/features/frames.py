"""The DataFrame side of a training set: reading entity rows, joining features back, hashing.

Feast's file offline store answers ``get_historical_features`` with point-in-time-correct
values but (measured on Feast 0.67) loses the shape of the request: it drops an entity row whose
key has feature rows, none of them inside the TTL; it returns an entity row whose key has no
feature row at all with null features; it keeps one row per (key, timestamp); and it returns rows
in its own order. So Feast is only asked for the distinct (keys, timestamp) pairs, and its answer
is joined back onto the caller's rows here, where every row that got no features, for either
reason, is counted and left out. Nothing in this module imports Feast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrelay._deps import require
from mlrelay.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

FEAST_TIMESTAMP = "event_timestamp"
"""The column name Feast looks for first in an entity frame: the timestamp is sent under it."""

_READERS = {".parquet": "read_parquet", ".pq": "read_parquet", ".csv": "read_csv"}


def read_entities(source: str, *, field: str = "entity_source") -> pd.DataFrame:
    """Read the entity rows from a Parquet or CSV file, or say exactly why they cannot be."""
    pandas = require("pandas", "feast")
    path = Path(source)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ConfigError(f"{source}: expected a .parquet, .pq or .csv file", field=field)
    if not path.is_file():
        raise ConfigError(f"{source}: no such file", field=field)
    try:
        frame: pd.DataFrame = getattr(pandas, reader)(path)
    except Exception as exc:  # pyarrow, the CSV parser and the OS each raise their own types
        raise ConfigError(f"{source}: cannot be read ({exc})", field=field) from exc
    return frame


def check_entities(
    frame: pd.DataFrame, *, keys: list[str], timestamp: str, extra: list[str], field: str
) -> pd.DataFrame:
    """Return a copy whose timestamp column is UTC, after checking every column the join needs.

    Naive timestamps are taken as UTC, as Feast takes them; the training set carries them as UTC.
    """
    pd = require("pandas", "feast")
    if frame.empty:
        raise ConfigError("there are no entity rows", field=field)
    absent = [c for c in [*keys, timestamp, *extra] if c not in frame.columns]
    if absent:
        raise ConfigError(
            f"entity rows lack column(s) {absent}; they have {list(frame.columns)}", field=field
        )
    for column in [*keys, timestamp]:
        nulls = int(frame[column].isna().sum())
        if nulls:
            raise ConfigError(f"{nulls} entity rows have no {column!r}", field=field)
    out = frame.copy()
    try:
        out[timestamp] = pd.to_datetime(out[timestamp], utc=True).astype("datetime64[ns, UTC]")
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"column {timestamp!r} does not hold timestamps ({exc})", field=field
        ) from exc
    return out


def request_frame(entities: pd.DataFrame, *, on: list[str], timestamp: str) -> pd.DataFrame:
    """The distinct join rows to send to Feast, the timestamp under the name Feast expects."""
    unique = entities[on].drop_duplicates(ignore_index=True)
    return unique.rename(columns={timestamp: FEAST_TIMESTAMP})


def join_back(
    entities: pd.DataFrame,
    served: pd.DataFrame,
    *,
    on: list[str],
    timestamp: str,
    view_columns: dict[str, list[str]],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Attach Feast's answer to every entity row, in the caller's order.

    Returns the training set, the entity rows that got no features (in order), and per
    feature view how many rows found no row in it. A row counts as unserved by a view when Feast
    dropped it or returned every feature of that view as null: the file store cannot tell a
    missing row from a row whose values are all null, so neither can this.
    """
    served = served.rename(columns={FEAST_TIMESTAMP: timestamp})
    served[timestamp] = served[timestamp].astype("datetime64[ns, UTC]")
    served = served.drop_duplicates(subset=on, ignore_index=True)
    merged = entities.merge(served, on=on, how="left", indicator="_mlrelay_join", sort=False)
    returned = merged.pop("_mlrelay_join") == "both"
    missing = ~returned
    by_view: dict[str, int] = {}
    for view, columns in view_columns.items():
        unserved = ~returned | merged[columns].isna().all(axis=1)
        by_view[view] = int(unserved.sum())
        missing |= unserved
    kept = merged.loc[~missing].reset_index(drop=True)
    dropped = entities.loc[missing.to_numpy()].reset_index(drop=True)
    return kept, dropped, by_view


def json_rows(frame: pd.DataFrame, *, columns: list[str], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` rows as JSON-safe dicts: ISO timestamps, plain numbers, null for NaN."""
    pd = require("pandas", "feast")
    head = frame[columns].head(limit).copy()
    for column in columns:
        if pd.api.types.is_datetime64_any_dtype(head[column]):
            head[column] = head[column].map(lambda t: t.isoformat())
    rows: list[dict[str, Any]] = json.loads(head.to_json(orient="records"))
    return rows


def content_hash(frame: pd.DataFrame) -> str:
    """``sha256:<hex>`` of the frame's column names, types and values, in row order.

    It hashes content, not the Parquet bytes, so it does not change with the writer's version
    or metadata: the same rows give the same hash on every machine.
    """
    pd = require("pandas", "feast")
    digest = hashlib.sha256()
    for name, column in frame.items():
        digest.update(json.dumps([str(name), str(column.dtype)]).encode())
        digest.update(pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def write_parquet(frame: pd.DataFrame, output: str) -> Path:
    """Write ``frame`` to ``output`` atomically, so a crash never leaves half a training set."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    frame.to_parquet(partial, index=False)
    partial.replace(path)
    return path
