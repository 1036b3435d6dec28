"""A KServe model that serves one MLflow pyfunc model, typed by the model's signature.

KServe ships servers for sklearn, xgboost and friends, but none that reads an MLflow model
directory; ``mlflow models serve`` speaks neither V1 nor V2. This class closes the gap: KServe
answers the protocols (V1 ``:predict``, V2 ``/infer``, readiness, metadata), MLflow loads the
model exactly as it was logged (flavor, skops, pipeline and all).

Requests carry JSON, whose numbers have no width and whose tensors arrive column by column, so
every request is turned into a DataFrame with the signature's columns and cast to the
signature's types before ``predict``: a V2 client sending ``hour`` as ``FP64`` gets the same
answer as one sending ``INT64``. Inputs that cannot match the signature are a 400
(``InvalidInput``) naming the column, never a 500.

This module imports ``kserve``, whose ``model_server`` module parses ``sys.argv`` at import:
import it only from the server process (``mlrelay.serving.server`` clears ``sys.argv`` first).
"""

from __future__ import annotations

import logging
from typing import Any

import kserve
import numpy as np
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.utils.numpy_codec import from_np_dtype
from kserve.utils.utils import get_predict_response

log = logging.getLogger("mlrelay.serving")

# MLflow column types -> V2 tensor datatypes (strings, bytes and datetimes travel as BYTES).
_V2_DATATYPES = {
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
}


class MLflowModel(kserve.Model):  # type: ignore[misc]
    """Serve the MLflow model in ``model_dir`` under ``name``.

    Args:
        name: the endpoint's model name (``/v2/models/<name>/infer``).
        model_dir: a downloaded MLflow model directory (the one holding ``MLmodel``).
        version: the registered model version, echoed as ``model_version`` in V2 responses so a
            client (and the rollout's checks) can tell which version answered.
    """

    def __init__(self, name: str, model_dir: str, version: str | None = None) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.version = version
        self._pyfunc: Any = None
        self._inputs: Any = None
        self._outputs: Any = None
        self._columns: list[Any] = []

    def load(self) -> bool:
        """Load the pyfunc and its signature; the server starts serving only after this."""
        import mlflow.pyfunc

        self._pyfunc = mlflow.pyfunc.load_model(self.model_dir)
        self._inputs = self._pyfunc.metadata.get_input_schema()
        self._outputs = self._pyfunc.metadata.get_output_schema()
        if self._inputs is not None and not self._inputs.is_tensor_spec():
            self._columns = [c for c in self._inputs.inputs if c.name]
        self.ready = True
        return True

    def get_input_types(self) -> list[dict[str, Any]]:
        """The signature's inputs, one V2 tensor per column (``GET /v2/models/<name>``)."""
        return _describe(self._inputs, prefix="input")

    def get_output_types(self) -> list[dict[str, Any]]:
        return _describe(self._outputs, prefix="output")

    def predict(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        """Predict on a V1 body (``instances``) or a V2 request (named input tensors)."""
        frame = self._conform(
            _frame_v2(payload, self._columns)
            if isinstance(payload, InferRequest)
            else _frame_v1(payload, self._columns)
        )
        from mlflow.exceptions import MlflowException

        try:
            result = self._pyfunc.predict(frame)
        except MlflowException as exc:  # schema enforcement: the client sent the wrong data
            raise InvalidInput(str(exc)) from exc
        if isinstance(result, pd.Series | pd.Index):
            result = result.to_numpy()
        response = get_predict_response(payload, result, self.name)
        if isinstance(response, InferResponse):
            response.model_version = self.version
        return response  # type: ignore[no-any-return]

    def _conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Check that the signature's columns are present and cast them to its types."""
        if not self._columns:
            return frame
        missing = [c.name for c in self._columns if c.required and c.name not in frame.columns]
        if missing:
            expected = ", ".join(c.name for c in self._columns)
            raise InvalidInput(
                f"missing input column(s) {', '.join(missing)} (expected: {expected})"
            )
        for col in self._columns:
            if col.name in frame.columns:
                frame[col.name] = _cast(frame[col.name], col)
        return frame


def _describe(schema: Any, *, prefix: str) -> list[dict[str, Any]]:
    """V2 metadata entries for an MLflow schema; unnamed tensors get KServe's names."""
    if schema is None:
        return []
    entries = []
    for i, spec in enumerate(schema.inputs):
        if schema.is_tensor_spec():
            datatype = from_np_dtype(spec.type) or "BYTES"
            shape = list(spec.shape)
        else:
            datatype = _V2_DATATYPES.get(getattr(spec.type, "name", ""), "BYTES")
            shape = [-1]
        entries.append({"name": spec.name or f"{prefix}-{i}", "datatype": datatype, "shape": shape})
    return entries


def _frame_v2(request: InferRequest, columns: list[Any]) -> pd.DataFrame:
    """Named V2 tensors -> one column each; one 2-D unnamed tensor -> the signature's columns."""
    names = [c.name for c in columns]
    data: dict[str, Any] = {}
    for tensor in request.inputs:
        try:
            array = tensor.as_numpy()
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"input {tensor.name!r}: {exc}") from exc
        if len(request.inputs) == 1 and array.ndim == 2 and tensor.name not in names and names:
            if array.shape[1] != len(names):
                raise InvalidInput(
                    f"input {tensor.name!r} has {array.shape[1]} columns, the model takes "
                    f"{len(names)} ({', '.join(names)})"
                )
            return pd.DataFrame(array, columns=names)
        flat = array.reshape(-1)
        if tensor.datatype == "BYTES":
            flat = np.array([v.decode() if isinstance(v, bytes) else v for v in flat], dtype=object)
        data[tensor.name] = flat
    if not data:
        raise InvalidInput("the request has no inputs")
    lengths = {name: len(values) for name, values in data.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInput(f"inputs differ in length: {lengths}")
    return pd.DataFrame(data)


def _frame_v1(body: dict[str, Any], columns: list[Any]) -> pd.DataFrame:
    """V1 ``instances``: a list of records (dicts) or of rows in the signature's column order."""
    instances = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(instances, list) or not instances:
        raise InvalidInput('expected {"instances": [...]} with at least one record or row')
    if all(isinstance(row, dict) for row in instances):
        return pd.DataFrame.from_records(instances)
    if all(isinstance(row, list) for row in instances):
        names = [c.name for c in columns]
        if not names:
            return pd.DataFrame(instances)
        if any(len(row) != len(names) for row in instances):
            raise InvalidInput(f"each row must have {len(names)} values ({', '.join(names)})")
        return pd.DataFrame(instances, columns=names)
    raise InvalidInput("instances must all be records (objects) or all be rows (arrays)")


def _cast(values: pd.Series, col: Any) -> pd.Series:
    """Cast one column to its signature type, refusing conversions that would change values."""
    kind = getattr(col.type, "name", "")
    try:
        if kind == "string":
            return values if values.dtype == object else values.astype(str)
        if kind == "datetime":
            return pd.to_datetime(values)
        if kind not in _V2_DATATYPES or kind == "binary":
            return values
        target = col.type.to_pandas()
        if values.dtype == target:
            return values
        if kind == "boolean" and values.dtype == object:
            raise ValueError("expected true/false values")
        fractional = pd.api.types.is_float_dtype(values) and not (values.dropna() % 1 == 0).all()
        if kind in ("integer", "long") and fractional:
            raise ValueError("has fractional values")
        return values.astype(target)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"column {col.name!r} ({kind}): {exc}") from exc
