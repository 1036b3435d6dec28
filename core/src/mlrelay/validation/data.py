"""The data side of validation: what may be validated, how it is read, what its hash means.

Nothing here imports pandas at module level: ``import mlrelay.validation`` stays cheap, and the
argument checks in :func:`check_source` run before any heavy import, so a wrong path fails in
milliseconds rather than after Great Expectations has loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrelay._deps import require
from mlrelay.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

DATAFRAME_SOURCE = "<DataFrame>"

# File name endings we read, and the reader for each. pandas infers the compression of a CSV
# from its name, so the compressed forms cost nothing to support.
_READERS: dict[str, str] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
    ".csv.xz": "csv",
    ".csv.zst": "csv",
    ".csv.zip": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def check_source(data: object) -> Path | None:
    """Check the ``data`` argument without reading it; return its path, or None for a frame.

    Raises:
        ConfigError: ``data`` is neither a DataFrame nor a path, the file does not exist, or
            its extension is not one we can read.
    """
    if not isinstance(data, (str, os.PathLike)):
        # A DataFrame can only exist once pandas is imported, so this costs no import.
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(data, pandas.DataFrame):
            return None
        raise ConfigError(
            f"expected a pandas DataFrame or the path of a CSV or Parquet file, "
            f"got {type(data).__name__}",
            field="data",
        )
    path = Path(data)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"data file {str(path)!r} {what}", field="data")
    if _reader(path) is None:
        raise ConfigError(
            f"cannot tell how to read {str(path)!r}: expected one of {', '.join(_READERS)}",
            field="data",
        )
    return path


def load(data: object) -> tuple[pd.DataFrame, str]:
    """Return the data as a DataFrame, with the source to name in the report.

    A CSV is read with pandas' defaults, so its columns get the types pandas infers: a
    timestamp column stays text, an integer column with a gap becomes float. The suite sees
    exactly what was read, and so does the hash.

    Raises:
        ConfigError: the file cannot be read (naming it), or ``data`` is not data at all.
    """
    pd = require("pandas", "gx")
    path = check_source(data)
    if path is None:
        assert isinstance(data, pd.DataFrame)  # check_source() let nothing else through
        return data, DATAFRAME_SOURCE
    try:
        frame = pd.read_parquet(path) if _reader(path) == "parquet" else pd.read_csv(path)
    except (OSError, ValueError, ImportError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ConfigError(f"cannot read data file {str(path)!r}: {exc}", field="data") from exc
    return frame, str(path)


def content_hash(frame: pd.DataFrame) -> str:
    """Return ``sha256:<hex>`` of the frame's content, to name the data in lineage.

    What is hashed: the column names and dtypes, in order, then pandas' per-row hash
    (``pandas.util.hash_pandas_object(frame, index=False)``, which hashes each value by dtype),
    in row order. So the hash is the same for the same values under the same names and types,
    whatever the index is and whether the frame came from memory or from Parquet (which keeps
    dtypes). A CSV of the same table hashes differently when pandas reads some column back as
    a different type (timestamps as text, integers with gaps as float): it is different data as
    far as the suite is concerned too. Reordering rows or columns changes the hash. The per-row
    hash is pandas' own and has been stable across pandas releases; it is not a cryptographic
    commitment to the bytes of a file.
    """
    pd = require("pandas", "gx")
    digest = hashlib.sha256()
    schema = [[str(name), str(dtype)] for name, dtype in frame.dtypes.items()]
    digest.update(json.dumps(schema).encode())
    try:
        rows = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # unhashable cells (lists, dicts): hash their text instead
        rows = pd.util.hash_pandas_object(_hashable(frame), index=False)
    digest.update(rows.to_numpy(dtype="<u8").tobytes())
    return f"sha256:{digest.hexdigest()}"


def jsonable(value: Any) -> Any:
    """Turn a value found in data or in a GX result into something ``json.dumps`` accepts.

    Numpy and pandas scalars become Python ones, every kind of missing value (None, NaN,
    ``pd.NA``, ``NaT``) becomes None, dates and times become ISO 8601 strings; anything else
    unknown becomes its ``str``. Infinite floats become None too: JSON has no literal for them.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    pd = require("pandas", "gx")
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return pd.Timedelta(value).isoformat()
    np = require("numpy", "gx")
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.timedelta64):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, (np.generic, np.ndarray)):
        return jsonable(value.tolist())
    if isinstance(value, Decimal):
        return jsonable(float(value))
    return str(value)


def _reader(path: Path) -> str | None:
    name = path.name.lower()
    for ending, reader in _READERS.items():
        if name.endswith(ending):
            return reader
    return None


def _hashable(frame: pd.DataFrame) -> pd.DataFrame:
    pd = require("pandas", "gx")
    copy = frame.copy()
    for position, dtype in enumerate(copy.dtypes):
        if pd.api.types.is_object_dtype(dtype):
            copy.isetitem(position, copy.iloc[:, position].map(repr))
    return copy
