"""What goes into a training job: argv taken literally (S5), secrets kept secret, bad fields refused.

Trainers are tiny ``python -c`` programs that print what they were given; every refusal is a
ConfigError naming the field, raised before an MLflow run or a process exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from training_support import (  # noqa: F401 - fixtures
    fake_run,
    fixture_local,
    py,
    unique,
)

from mlrelay import lineage
from mlrelay.errors import ConfigError, TrainingFailed
from mlrelay.settings import MLflowSettings
from mlrelay.training import (
    EnvVar,
    JobState,
    LocalBackend,
    Resources,
    SecretKeyRef,
    TrainingJob,
    train,
)

SECRET = "s3cr3t-Value-42"  # what must never show up in logs, results or errors
TOKEN = "mlflow-Token-7"


def test_s5_shell_metacharacters_are_passed_literally(local: LocalBackend, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    args = [
        f"; touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"| touch {marker}",
        "&&",
        "*",
        "$HOME",
        "'quoted' \"twice\"",
        "a\nb",
    ]
    job = TrainingJob(
        name="argv", command=py("import json, sys; print(json.dumps(sys.argv[1:]))"), args=args
    )
    handle = local.submit(job, fake_run())
    assert local.wait(handle).state is JobState.SUCCEEDED
    assert json.loads(next(local.logs(handle))) == args
    assert not marker.exists()


def test_command_with_shell_syntax_is_not_found_rather_than_run(local: LocalBackend) -> None:
    job = TrainingJob(name="argv", command=["echo hi; touch mlrelay-s5"])
    with pytest.raises(ConfigError) as err:
        local.validate(job)
    assert err.value.field == "command"
    assert "not found on PATH" in str(err.value)


# -- secrets ----------------------------------------------------------------------------------


def test_secret_value_reaches_the_trainer_but_no_log_result_or_error(
    mlrelay_home,
    mlflow_settings: MLflowSettings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="mlrelay")
    # The MLflow token is a secret too; the client exports it here, so restore it afterwards.
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "restored-after-the-test")
    settings = mlflow_settings.model_copy(update={"token": SecretStr(TOKEN)})
    lines: list[str] = []
    trainer = py("""
        import hashlib, os, sys
        value = os.environ["API_TOKEN"]
        print("sha256", hashlib.sha256(value.encode()).hexdigest())
        print("careless trainer prints", value, os.environ["MLFLOW_TRACKING_TOKEN"])
        sys.exit(int(sys.argv[1]))
    """)
    secret_env = [EnvVar(name="API_TOKEN", secret_value=SECRET)]

    job = TrainingJob(
        name="with-secret",
        experiment=unique("training"),
        command=trainer,
        args=["0"],
        env=secret_env,
    )
    result = train(job, settings=settings, log=lines.append)  # default backend: local
    assert f"sha256 {hashlib.sha256(SECRET.encode()).hexdigest()}" in lines
    assert "careless trainer prints *** ***" in lines  # masked at the source

    failing = job.model_copy(update={"args": ["1"]})
    with pytest.raises(TrainingFailed) as err:
        train(failing, settings=settings)

    assert "LocalBackend" in caplog.text  # the default backend said so
    job_logs = [p.read_text() for p in (mlrelay_home.home / "jobs").rglob("output.log")]
    assert len(job_logs) == 2
    for secret in (SECRET, TOKEN):
        for text in (
            result.model_dump_json(),
            repr(job),
            str(err.value),
            repr(err.value.logs),
            caplog.text,
            *job_logs,
        ):
            assert secret not in text


def test_secret_key_ref_is_read_from_the_secrets_dir(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "db-creds").mkdir(parents=True)
    (secrets / "db-creds" / "password").write_text(SECRET)
    backend = LocalBackend(secrets_dir=secrets, state_dir=tmp_path / "jobs")
    job = TrainingJob(
        name="with-secret-ref",
        command=py(
            "import hashlib, os; "
            "print(hashlib.sha256(os.environ['DB_PASSWORD'].encode()).hexdigest())"
        ),
        env=[
            EnvVar(name="DB_PASSWORD", secret_key_ref=SecretKeyRef(name="db-creds", key="password"))
        ],
    )
    handle = backend.submit(job, fake_run())
    assert backend.wait(handle).state is JobState.SUCCEEDED
    assert list(backend.logs(handle)) == [hashlib.sha256(SECRET.encode()).hexdigest()]


def test_missing_secret_file_is_config_error_before_the_run_is_created(
    tmp_path: Path, mlflow_settings: MLflowSettings, client
) -> None:
    experiment = unique("training")
    job = TrainingJob(
        name="no-secret",
        experiment=experiment,
        command=py("print('never runs')"),
        env=[EnvVar(name="TOKEN", secret_key_ref=SecretKeyRef(name="api", key="token"))],
    )
    backend = LocalBackend(secrets_dir=tmp_path / "secrets", state_dir=tmp_path / "jobs")
    with pytest.raises(ConfigError) as err:
        train(job, backend, settings=mlflow_settings)
    assert err.value.field == "env[0].secret_key_ref"
    assert "api/token" in str(err.value)
    assert client.get_experiment_by_name(experiment) is None  # no experiment, so no run
    assert not (tmp_path / "jobs").exists()  # and no process


# -- fields the job or the backend refuses ----------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"command": ["no-such-trainer-binary"]}, "command"),
        ({"command": ["./train.py"], "working_dir": "/"}, "command"),
        ({"working_dir": "/no/such/dir"}, "working_dir"),
        (
            {"env": [EnvVar(name="K", secret_key_ref=SecretKeyRef(name="s", key="k"))]},
            "env[0].secret_key_ref",
        ),
    ],
)
def test_local_backend_rejects_what_it_cannot_run(overrides: dict, field: str) -> None:
    job = TrainingJob(**{"name": "bad", "command": [sys.executable], **overrides})
    with pytest.raises(ConfigError) as err:
        LocalBackend().validate(job)  # no secrets_dir for the secret_key_ref case
    assert err.value.field == field


def test_user_tags_cannot_forge_lineage() -> None:
    with pytest.raises(ConfigError, match="reserved"):
        TrainingJob(name="x", command=["true"], tags={lineage.DATASET_HASH: "sha256:fake"})


def test_job_env_cannot_redirect_the_trainer_away_from_its_run() -> None:
    with pytest.raises(ConfigError, match="MLFLOW_RUN_ID: set by mlrelay"):
        TrainingJob(name="x", command=["true"], env=[EnvVar(name="MLFLOW_RUN_ID", value="other")])


def test_fields_the_local_backend_cannot_honour_are_reported_once(tmp_path: Path) -> None:
    notes: list[str] = []
    backend = LocalBackend(state_dir=tmp_path / "jobs", log=notes.append)
    job = TrainingJob(
        name="cluster-ish",
        command=["true"],
        image="ghcr.io/acme/train:1",
        resources=Resources(cpu="2", memory="4Gi"),
        service_account="trainer",
    )
    backend.wait(backend.submit(job, fake_run()))
    ignored = [n for n in notes if "ignores" in n]
    assert len(ignored) == 1
    assert all(f in ignored[0] for f in ("image", "resources", "service_account"))
