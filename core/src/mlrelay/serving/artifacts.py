"""A registered model version on local disk, and the rows its smoke test will send.

Both happen before any server starts, so that a version that does not exist, is not READY, or
whose sample rows miss a column fails with a ``ConfigError`` in a second instead of after a
20-second server start.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlrelay import _mlflow
from mlrelay._deps import require
from mlrelay._model import safe_name
from mlrelay.errors import ConfigError, ServiceUnavailable
from mlrelay.registry.spec import ModelVersionRef
from mlrelay.serving import smoke
from mlrelay.serving.spec import DeploymentSpec
from mlrelay.settings import LocalSettings, MLflowSettings

log = logging.getLogger("mlrelay.serving")

_SOURCE_MARKER = ".mlrelay-source"


def download(
    ref: ModelVersionRef,
    settings: MLflowSettings | None,
    local: LocalSettings,
    *,
    metadata_only: bool = False,
) -> tuple[Path, str | None]:
    """Download ``ref`` into ``MLRELAY_HOME/models/<name>/<version>``; return it and the run id.

    A version's files never change, so a directory downloaded before is reused; it records the
    version's source, so a version deleted and re-created under the same number is fetched
    again. The download goes to a scratch directory renamed into place: a crash never leaves a
    half-downloaded model that a later deploy would trust.

    ``metadata_only`` fetches just the ``MLmodel`` file and the input example (into
    ``MLRELAY_HOME/model-metadata/...``, or the full copy if there is one): what a smoke test
    needs where the model is served elsewhere (KServe), without pulling gigabytes of weights
    onto an orchestrator's worker.
    """
    mlflow = require("mlflow", "serve")
    from mlflow.exceptions import MlflowException

    settings = _mlflow.resolve(settings, local)
    client = _mlflow.client(settings)
    try:
        version = client.get_model_version(ref.name, ref.version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ConfigError(
                f"{ref.uri} is not registered at {settings.display_uri}", field="model"
            ) from exc
        raise ServiceUnavailable(
            f"could not read {ref.uri} from the registry", uri=settings.display_uri
        ) from exc
    if version.status != "READY":
        raise ConfigError(f"{ref.uri} is {version.status}, not READY", field="model")

    parts = (safe_name(ref.name), safe_name(ref.version))
    full = local.home.resolve().joinpath("models", *parts)
    target = local.home.resolve().joinpath("model-metadata", *parts) if metadata_only else full
    for cached in dict.fromkeys((full, target)):
        marker = cached / _SOURCE_MARKER
        if marker.is_file() and marker.read_text() == version.source:
            log.info("using %s downloaded before, in %s", ref.uri, cached)
            return cached, version.run_id
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        # Not download_artifacts("models:/name/version", tracking_uri=...): MLflow 3 resolves a
        # models:/ URI with the process-wide registry URI and ignores the one passed.
        where = client.get_model_version_download_uri(ref.name, ref.version)
        if metadata_only:
            root = _fetch_metadata(mlflow, where, scratch / "model", settings.tracking_uri)
        else:
            root = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=where, dst_path=str(scratch), tracking_uri=settings.tracking_uri
                )
            )
        if not (root / "MLmodel").is_file():
            raise ConfigError(f"{ref.uri} has no MLmodel file: not an MLflow model", field="model")
        (root / _SOURCE_MARKER).write_text(version.source)
        shutil.rmtree(target, ignore_errors=True)  # a stale copy of a re-created version
        os.replace(root, target)
    except MlflowException as exc:
        raise ServiceUnavailable(f"could not download {ref.uri}", uri=settings.display_uri) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("downloaded %s%s into %s", ref.uri, " (metadata)" if metadata_only else "", target)
    return target, version.run_id


def _fetch_metadata(mlflow: Any, where: str, root: Path, tracking_uri: str | None) -> Path:
    """``MLmodel`` and the input example it names, laid out as in the model's directory."""
    from mlflow.models import Model

    root.mkdir(parents=True)
    names = {
        Path(f.path).name
        for f in mlflow.artifacts.list_artifacts(artifact_uri=where, tracking_uri=tracking_uri)
    }
    if "MLmodel" not in names:
        return root  # the caller says "not an MLflow model"
    mlmodel = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{where.rstrip('/')}/MLmodel", dst_path=str(root),
            tracking_uri=tracking_uri,
        )
    )  # fmt: skip
    info = Model.load(str(mlmodel)).saved_input_example_info or {}
    example = info.get("artifact_path")
    if isinstance(example, str) and example:
        if Path(example).is_absolute() or ".." in Path(example).parts:  # written under root
            message = f"MLmodel names an input example outside the model: {example!r}"
            raise ConfigError(message, field="model")
        dest = (root / example).parent
        dest.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{where.rstrip('/')}/{example}", dst_path=str(dest),
            tracking_uri=tracking_uri,
        )  # fmt: skip
    return root


def smoke_rows(spec: DeploymentSpec, model_dir: Path) -> tuple[list[dict[str, Any]] | None, str]:
    """The rows to smoke-test with and where they came from (``sample_rows``, ``input_example``).

    Raises:
        ConfigError: the sample rows lack a signature column, or there are no sample rows and
            the model was logged without a tabular input example.
    """
    if not spec.smoke_test:
        return None, "disabled"
    from mlflow.models import Model

    mlmodel = Model.load(str(model_dir))
    if spec.sample_rows:
        _check_columns(spec.sample_rows, mlmodel.get_input_schema())
        return list(spec.sample_rows), "sample_rows"
    example = mlmodel.load_input_example(str(model_dir))
    if example is None or not hasattr(example, "to_dict"):
        raise ConfigError(
            f"{spec.model.uri} has no tabular input example to smoke-test with: "
            "give sample_rows, or set smoke_test=False",
            field="sample_rows",
        )
    return smoke.rows_from_frame(example), "input_example"


def _check_columns(rows: list[dict[str, Any]], schema: Any) -> None:
    """Every sample row must carry every required column of the signature."""
    if schema is None or schema.is_tensor_spec():
        return
    required = [c.name for c in schema.inputs if c.name and c.required]
    known = set(schema.input_names())
    for i, row in enumerate(rows):
        missing = [name for name in required if name not in row]
        if missing:
            unknown = sorted(set(row) - known)
            raise ConfigError(
                f"row {i} lacks the model's input column(s) {', '.join(missing)}"
                + (f" and has unknown column(s) {', '.join(unknown)}" if unknown else ""),
                field="sample_rows",
            )


def rows_for(
    spec: DeploymentSpec, settings: MLflowSettings | None, local: LocalSettings
) -> tuple[list[dict[str, Any]] | None, str]:
    """``smoke_rows`` for a backend that does not otherwise need the model on this machine: only
    the model's ``MLmodel`` (signature) and input example are fetched, once, and cached."""
    if not spec.smoke_test:
        return None, "disabled"
    model_dir, _ = download(spec.model, settings, local, metadata_only=True)
    return smoke_rows(spec, model_dir)
