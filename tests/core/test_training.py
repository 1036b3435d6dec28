"""The train step on the local backend: real MLflow server, real subprocesses, no mocks.

Trainers other than the example are tiny ``python -c`` programs that do one thing each (print,
fail, wait for a file, spawn a grandchild, ignore SIGTERM), so every test shows one behaviour
and costs a Python start-up, not an ML stack. Waits on the test side are bounded polls of files
the trainer writes; the timeout test runs on an injected clock, so "an hour" takes milliseconds.
"""

from __future__ import annotations

import _thread
import hashlib
import json
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from mlrelay import _proc, lineage
from mlrelay.errors import ConfigError, ServiceUnavailable, TrainingFailed
from mlrelay.settings import MLflowSettings
from mlrelay.training import (
    EnvVar,
    JobHandle,
    JobState,
    LocalBackend,
    Resources,
    RunContext,
    SecretKeyRef,
    TrainingBackend,
    TrainingJob,
    TrainingResult,
    train,
)

ROOT = Path(__file__).resolve().parents[2]
TRAIN_PY = ROOT / "examples" / "training" / "train.py"
SECRET = "s3cr3t-Value-42"  # what must never show up in logs, results or errors
TOKEN = "mlflow-Token-7"


def py(code: str) -> list[str]:
    """A trainer command: this interpreter running ``code`` (dedented)."""
    return [sys.executable, "-c", textwrap.dedent(code)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fake_run() -> RunContext:
    """A run context for backend-only tests (the backend never talks to MLflow itself)."""
    return RunContext(
        run_id=uuid.uuid4().hex,
        experiment_id="0",
        experiment_name="t",
        tracking_uri="http://127.0.0.1:9",
    )


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def gone(*pids: int) -> bool:
    return not any(_proc.alive(p) for p in pids)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalBackend]:
    """A LocalBackend with a private state dir; whatever it started is stopped afterwards."""

    class Tracked(LocalBackend):
        handles: list[JobHandle] = []

        def submit(self, job: TrainingJob, run: RunContext) -> JobHandle:
            handle = super().submit(job, run)
            self.handles.append(handle)
            return handle

    backend = Tracked(state_dir=tmp_path / "jobs", grace_period=2.0)
    yield backend
    for handle in backend.handles:
        backend.cancel(handle)


@pytest.fixture
def client(mlflow_settings: MLflowSettings):
    import mlflow

    return mlflow.MlflowClient(mlflow_settings.tracking_uri)


def test_local_backend_keeps_the_backend_protocol() -> None:
    assert isinstance(LocalBackend(), TrainingBackend)


# -- the example trainer, end to end ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(mlflow_server: str, fraud_data: dict[str, Path], tmp_path_factory) -> dict:
    """One real training run of examples/training/train.py, shared by the tests below."""
    settings = MLflowSettings(tracking_uri=mlflow_server)
    lines: list[str] = []
    job = TrainingJob(
        name="fraud-train",
        command=[sys.executable, str(TRAIN_PY)],
        args=["--training-set", str(fraud_data["transactions"]), "--target", "is_fraud"],
        experiment=unique("training"),
        dataset_uri=str(fraud_data["transactions"]),
        dataset_hash="sha256:0123abcd",
        validation={
            "suite_name": "transactions",
            "success": True,
            "statistics": {"evaluated_expectations": 8, "successful_expectations": 8},
        },
        tags={"team": "fraud"},
    )
    backend = LocalBackend(state_dir=tmp_path_factory.mktemp("jobs"))
    started = time.monotonic()
    result = train(job, backend, settings=settings, log=lines.append)
    wall = time.monotonic() - started
    return {"job": job, "result": result, "lines": lines, "wall": wall, "settings": settings}


@pytest.mark.slow
def test_example_trainer_logs_metrics_and_a_model_into_the_prepared_run(trained: dict) -> None:
    result: TrainingResult = trained["result"]
    assert result.backend == "local"
    assert result.job_name == "fraud-train"
    assert len(result.run_id) == 32
    assert 0.5 < result.metrics["roc_auc"] <= 1.0
    assert {"average_precision", "precision", "recall", "f1", "log_loss"} <= set(result.metrics)
    assert result.params["model"] == "logreg"
    assert result.model_uri is not None
    assert result.model_uri.startswith("models:/m-")
    assert result.dataset_hash == "sha256:0123abcd"
    # The JSON an adapter puts into XCom / metadata round-trips.
    dumped = json.loads(json.dumps(result.model_dump(mode="json")))
    assert TrainingResult.model_validate(dumped) == result
    # The trainer logged into the run it was given, and its lines were streamed to us.
    assert any(f"logging to MLflow run {result.run_id}" in line for line in trained["lines"])
    assert any(line.startswith("metrics: roc_auc=") for line in trained["lines"])
    script = next(line for line in trained["lines"] if line.startswith("done in "))
    print(
        f"\ntrain() wall {trained['wall']:.2f}s, job {result.duration_seconds:.2f}s, "
        f"script body {script}"
    )


@pytest.mark.slow
def test_training_run_is_finished_and_carries_the_lineage(trained: dict) -> None:
    import mlflow

    run = mlflow.MlflowClient(trained["settings"].tracking_uri).get_run(trained["result"].run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "fraud-train"
    tags = run.data.tags
    assert tags[lineage.JOB_NAME] == "fraud-train"
    assert tags[lineage.BACKEND] == "local"
    assert tags[lineage.DATASET_HASH] == "sha256:0123abcd"
    assert tags[lineage.DATASET_URI].endswith("transactions.parquet")
    assert tags[lineage.VALIDATION_SUCCESS] == "true"
    assert tags[lineage.VALIDATION_SUITE] == "transactions"
    assert json.loads(tags[lineage.VALIDATION_STATS])["evaluated_expectations"] == 8
    assert tags["team"] == "fraud"


@pytest.mark.slow
def test_logged_model_loads_with_pyfunc_and_predicts_raw_rows(
    trained: dict, fraud_data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc
    import pandas as pd

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["settings"].tracking_uri)
    model = mlflow.pyfunc.load_model(trained["result"].model_uri)
    rows = pd.read_parquet(fraud_data["transactions"])[
        ["amount", "hour", "is_online", "merchant_category"]
    ].head(5)  # raw columns, integers and text as in the table
    predictions = model.predict(rows)
    assert len(predictions) == 5
    assert set(map(int, predictions)) <= {0, 1}


# -- failures ---------------------------------------------------------------------------------


def test_failing_command_raises_training_failed_with_exit_code_and_last_lines(
    local: LocalBackend, mlflow_settings: MLflowSettings, client
) -> None:
    job = TrainingJob(
        name="fails",
        experiment=unique("training"),
        command=py("""
            import sys
            for i in range(60):
                print(f"line {i}")
            print("boom: bad input", file=sys.stderr)
            sys.exit(3)
        """),
    )
    with pytest.raises(TrainingFailed) as err:
        train(job, local, settings=mlflow_settings)
    exc = err.value
    assert exc.reason == "NonZeroExit"
    assert exc.exit_code == 3
    assert len(exc.logs) == 50
    assert exc.logs[-1] == "boom: bad input"
    assert exc.logs[0] == "line 11"
    assert "boom: bad input" in str(exc)
    assert client.get_run(exc.run_id).info.status == "FAILED"


class FakeTime:
    """A clock that stands still until the trainer has started, then jumps with every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.ticking = threading.Event()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.ticking.is_set():
            self.now += seconds
        time.sleep(0.002)  # let the real processes move


TRAINER_WITH_GRANDCHILD = """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(sys.argv[1], "w") as f:
        f.write(f"{os.getpid()} {child.pid} {os.getpgrp()}")
    print("started", flush=True)
    time.sleep(300)
"""


def read_pids(path: Path) -> tuple[int, int, int]:
    wait_for(path.exists, "the trainer's pid file")
    trainer, grandchild, pgid = map(int, path.read_text().split())
    return trainer, grandchild, pgid


def test_timeout_stops_the_process_group_and_fails_the_run(
    tmp_path: Path, mlflow_settings: MLflowSettings, client
) -> None:
    fake = FakeTime()
    backend = LocalBackend(
        state_dir=tmp_path / "jobs", poll_interval=60, clock=fake.clock, sleep=fake.sleep
    )
    pids = tmp_path / "pids"
    job = TrainingJob(
        name="too-slow",
        experiment=unique("training"),
        command=py(TRAINER_WITH_GRANDCHILD),
        args=[str(pids)],
        timeout=3600,
    )

    def on_line(line: str) -> None:
        if line == "started":
            fake.ticking.set()

    real_start = time.monotonic()
    with pytest.raises(TrainingFailed) as err:
        train(job, backend, settings=mlflow_settings, log=on_line)
    assert time.monotonic() - real_start < 60  # an hour of job time, without the hour

    assert err.value.reason == "Timeout"
    assert err.value.logs == ["started"]
    trainer, grandchild, pgid = read_pids(pids)
    assert gone(trainer, grandchild, pgid)
    assert _proc.members(pgid) == []
    assert client.get_run(err.value.run_id).info.status == "FAILED"


def test_cancel_via_a_handle_stops_the_trainer_and_its_grandchild(
    local: LocalBackend, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    job = TrainingJob(name="cancel-me", command=py(TRAINER_WITH_GRANDCHILD), args=[str(pids)])
    handle = local.submit(job, fake_run())
    assert next(local.logs(handle)) == "started"
    trainer, grandchild, pgid = read_pids(pids)
    assert pgid == handle.pid
    assert local.status(handle).state is JobState.RUNNING

    # A handle is all it takes: a fresh backend (as in another process) cancels the job.
    other = LocalBackend(grace_period=2.0)
    other.cancel(JobHandle.model_validate_json(handle.model_dump_json()))

    assert gone(trainer, grandchild)
    assert _proc.members(pgid) == []
    status = local.status(handle)
    assert status.state is JobState.CANCELLED
    assert status.reason == "Cancelled"


def test_cancel_kills_a_trainer_that_ignores_sigterm_after_the_grace_period(
    tmp_path: Path,
) -> None:
    backend = LocalBackend(state_dir=tmp_path / "jobs", grace_period=0.5)
    job = TrainingJob(
        name="stubborn",
        command=py("""
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("ignoring SIGTERM", flush=True)
            time.sleep(300)
        """),
    )
    handle = backend.submit(job, fake_run())
    assert next(backend.logs(handle)) == "ignoring SIGTERM"
    backend.cancel(handle)
    assert _proc.members(handle.pid) == []
    assert backend.status(handle).state is JobState.CANCELLED


def test_ctrl_c_stops_the_trainer_and_marks_the_run_killed(
    tmp_path: Path, local: LocalBackend, mlflow_settings: MLflowSettings, client
) -> None:
    experiment, pids = unique("training"), tmp_path / "pids"
    job = TrainingJob(
        name="interrupted",
        experiment=experiment,
        command=py(TRAINER_WITH_GRANDCHILD),
        args=[str(pids)],
    )

    def on_line(line: str) -> None:
        if line == "started":
            _thread.interrupt_main()  # what Ctrl-C does to the waiting caller

    with pytest.raises(KeyboardInterrupt):
        train(job, local, settings=mlflow_settings, log=on_line)
    trainer, grandchild, pgid = read_pids(pids)
    assert gone(trainer, grandchild)
    assert _proc.members(pgid) == []
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert [r.info.status for r in runs] == ["KILLED"]


def test_job_cancelled_through_its_handle_fails_the_waiting_train_call(
    tmp_path: Path, local: LocalBackend, mlflow_settings: MLflowSettings, client
) -> None:
    pids = tmp_path / "pids"
    job = TrainingJob(
        name="cancelled",
        experiment=unique("training"),
        command=py(TRAINER_WITH_GRANDCHILD),
        args=[str(pids)],
    )

    def on_line(line: str) -> None:  # an orchestrator's on_kill, from another thread
        if line == "started":
            threading.Thread(target=local.cancel, args=(local.handles[-1],)).start()

    with pytest.raises(TrainingFailed) as err:
        train(job, local, settings=mlflow_settings, log=on_line)
    assert err.value.reason == "Cancelled"
    trainer, grandchild, pgid = read_pids(pids)
    assert gone(trainer, grandchild)
    assert _proc.members(pgid) == []
    assert client.get_run(err.value.run_id).info.status == "KILLED"


def test_trainer_is_stopped_when_the_submitting_process_dies(tmp_path: Path) -> None:
    caller = subprocess.Popen(
        py(f"""
            import sys, time
            from mlrelay.training import LocalBackend, RunContext, TrainingJob
            job = TrainingJob(name="orphan", command=[sys.executable, "-c",
                              "print('up', flush=True); import time; time.sleep(300)"])
            run = RunContext(run_id="r1", experiment_id="0", experiment_name="t",
                             tracking_uri="http://127.0.0.1:9")
            handle = LocalBackend(state_dir={str(tmp_path / "jobs")!r}).submit(job, run)
            print(handle.model_dump_json(), flush=True)
            time.sleep(300)
        """),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        handle = JobHandle.model_validate_json(caller.stdout.readline())
        backend = LocalBackend()
        assert next(backend.logs(handle)) == "up"
    finally:
        caller.kill()  # SIGKILL: no cleanup code of the caller runs
        caller.wait()
    wait_for(lambda: not _proc.members(handle.pid), "the orphaned trainer to stop", timeout=15)
    status = backend.status(handle)
    assert status.state is JobState.CANCELLED
    assert status.reason == "OwnerDied"


@pytest.mark.slow
def test_o1_sigterm_of_the_caller_stops_the_trainer_and_marks_the_run_killed(
    tmp_path: Path, mlflow_settings: MLflowSettings, client
) -> None:
    experiment = unique("training")
    pids = tmp_path / "pids"
    caller = subprocess.Popen(
        py(f"""
            import sys, textwrap
            from mlrelay.settings import MLflowSettings
            from mlrelay.training import LocalBackend, TrainingJob, train
            trainer = textwrap.dedent({TRAINER_WITH_GRANDCHILD!r})
            job = TrainingJob(name="sigtermed", experiment={experiment!r},
                              command=[sys.executable, "-c", trainer], args=[{str(pids)!r}])
            train(job, LocalBackend(state_dir={str(tmp_path / "jobs")!r}),
                  settings=MLflowSettings(tracking_uri={mlflow_settings.tracking_uri!r}))
        """),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        trainer, grandchild, pgid = read_pids(pids)
        caller.send_signal(signal.SIGTERM)
        _, stderr = caller.communicate(timeout=60)
    finally:
        caller.kill()
    assert caller.returncode == 1  # a failed task, never a success
    assert "TrainingFailed" in stderr
    assert "Cancelled" in stderr
    assert "SIGTERM" in stderr
    assert gone(trainer, grandchild)
    assert _proc.members(pgid) == []
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert [r.info.status for r in runs] == ["KILLED"]


# -- input: argv, secrets, validation ---------------------------------------------------------


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


# -- logs -------------------------------------------------------------------------------------


def test_logs_reach_the_callback_while_the_trainer_is_still_running(
    tmp_path: Path, local: LocalBackend, mlflow_settings: MLflowSettings
) -> None:
    go = tmp_path / "go"
    job = TrainingJob(
        name="live-logs",
        experiment=unique("training"),
        command=py(f"""
            import os, sys, time
            print("waiting for go", flush=True)
            deadline = time.monotonic() + 60
            while not os.path.exists({str(go)!r}):
                if time.monotonic() > deadline:
                    sys.exit("nobody saw my first line")
                time.sleep(0.01)
            print("got go")
        """),
    )
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "waiting for go":
            go.touch()  # only a live stream can release the trainer

    train(job, local, settings=mlflow_settings, log=on_line)
    assert seen == ["waiting for go", "got go"]


def test_status_and_logs_work_from_another_process(local: LocalBackend) -> None:
    job = TrainingJob(name="elsewhere", command=py("print('one'); print('two', end='')"))
    handle = local.submit(job, fake_run())
    local.wait(handle)
    probe = subprocess.run(
        [
            *py(
                """\n            import sys\n            from mlrelay.training import JobHandle, LocalBackend\n            handle = JobHandle.model_validate_json(sys.argv[1])\n            backend = LocalBackend()\n            print(backend.status(handle).state.value, list(backend.logs(handle, follow=False)))\n        """
            ),
            handle.model_dump_json(),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "Succeeded ['one', 'two']"


def test_m5_tracking_server_down_is_service_unavailable_and_starts_nothing(
    tmp_path: Path,
) -> None:
    down = MLflowSettings(tracking_uri="http://127.0.0.1:9")  # nothing listens on port 9
    backend = LocalBackend(state_dir=tmp_path / "jobs")
    with pytest.raises(ServiceUnavailable) as err:
        train(
            TrainingJob(name="nowhere", command=py("print('never runs')")), backend, settings=down
        )
    assert err.value.uri == "http://127.0.0.1:9"
    assert "nowhere" in str(err.value)
    assert not (tmp_path / "jobs").exists()
