"""What a KServe deploy fetches for its smoke test where it runs: the model's ``MLmodel`` and its
input example, never the weights, and never a file outside the model's directory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from models_support import register

from mlrelay import _mlflow
from mlrelay.errors import ConfigError
from mlrelay.serving import artifacts
from mlrelay.serving.spec import DeploymentSpec
from mlrelay.settings import LocalSettings, MLflowSettings

FRAME = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})


def _model() -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(FRAME, [0, 1, 0, 1])


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_smoke_rows_for_kserve_fetch_mlmodel_and_the_input_example_only(
    mlflow_settings: MLflowSettings, tmp_path: Path
) -> None:
    ref = register(_mlflow.client(mlflow_settings), _model(), FRAME.head(3), tmp_path, "meta-only")
    home = tmp_path / "home"
    spec = DeploymentSpec(name="meta", model=ref)

    rows, source = artifacts.rows_for(spec, mlflow_settings, LocalSettings(home=home))

    assert source == "input_example"
    assert rows == [{"a": 0.0, "b": 1.0}, {"a": 1.0, "b": 0.0}, {"a": 2.0, "b": 1.0}]
    where = f"model-metadata/meta-only/{ref.version}"
    assert _files(home) == {
        f"{where}/MLmodel",
        f"{where}/input_example.json",
        f"{where}/.mlrelay-source",
    }
    # Read again (complete() does, where the deferred task resumes): from the cache.
    again = artifacts.rows_for(spec, mlflow_settings, LocalSettings(home=home))
    assert again == (rows, source)


def test_an_input_example_path_leaving_the_model_is_a_config_error_and_writes_nothing(
    mlflow_settings: MLflowSettings, tmp_path: Path
) -> None:
    def escape(model_dir: Path) -> None:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
        mlmodel["saved_input_example_info"]["artifact_path"] = "../../escape.json"
        (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))

    client = _mlflow.client(mlflow_settings)
    ref = register(client, _model(), FRAME.head(3), tmp_path / "work", "meta-escape", tamper=escape)
    home = tmp_path / "home"

    with pytest.raises(ConfigError, match="outside the model") as error:
        artifacts.rows_for(
            DeploymentSpec(name="meta", model=ref), mlflow_settings, LocalSettings(home=home)
        )

    assert error.value.field == "model"
    assert not list(tmp_path.rglob("escape.json"))
    assert _files(home) == set()  # the scratch directory is gone too
