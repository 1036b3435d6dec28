"""FAULTS K1-K8 and S2: every API call of the Kubernetes training backend under the one retry
policy, against the emulator's injected faults. Waits are recorded, not slept (injected sleep)."""

from __future__ import annotations

import time

import pytest
from train_support import Sleeps, backend_for, fake_run, jobs, py_job, settings_for

from mlrelay.errors import ConfigError, ServiceUnavailable
from mlrelay.kube.client import SECRETS, Kube
from mlrelay.testing import KubeEmulator
from mlrelay.testing.auth import ADMIN
from mlrelay.testing.kinds import SECRETS as SECRET_KIND
from mlrelay.training import EnvVar, JobState, RunIdentity

QUICK = "print('ok')"


def backend_with_sleeps(emulator: KubeEmulator, **settings: object):
    sleeps = Sleeps()
    kube = Kube(settings_for(emulator, **settings), sleep=sleeps)
    return backend_for(emulator, kube=kube), sleeps


def test_k1_create_500_twice_backs_off_with_jitter_and_makes_one_job(
    kube_emulator: KubeEmulator,
) -> None:
    backend, sleeps = backend_with_sleeps(kube_emulator)
    kube_emulator.faults.fail_next(2, method="POST", path="/jobs$", status=500)
    handle = backend.submit(py_job(QUICK), fake_run())
    assert [j["metadata"]["name"] for j in jobs(kube_emulator)] == [handle.job_name]
    assert len(sleeps) == 2
    assert 0 < sleeps[0] < sleeps[1] + 1.0
    assert [f[2] for f in kube_emulator.faults.fired] == ["fail", "fail"]


def test_k2_lost_create_response_adopts_the_job_it_made(kube_emulator: KubeEmulator) -> None:
    backend, _ = backend_with_sleeps(kube_emulator)
    kube_emulator.faults.lose_response_next(method="POST", path="/jobs$")
    run = fake_run()
    identity = RunIdentity(orchestrator="airflow", run_id="r1", task_id="train")
    handle = backend.submit(py_job(QUICK, name="adopt-me"), run, identity)
    assert handle.job_name == identity.job_name("adopt-me")
    assert len(jobs(kube_emulator)) == 1
    # and a retry of the task (same run, same identity) adopts it again: still one Job
    again = backend.submit(py_job(QUICK, name="adopt-me"), run, identity)
    assert again.job_name == handle.job_name
    assert len(jobs(kube_emulator)) == 1


def test_k2_existing_job_of_another_owner_is_a_clear_error_and_is_left_alone(
    kube_emulator: KubeEmulator,
) -> None:
    backend, _ = backend_with_sleeps(kube_emulator)
    backend.submit(py_job(QUICK, name="taken"), fake_run())  # another run made it
    with pytest.raises(ConfigError, match="already exists") as info:
        backend.submit(
            py_job(QUICK, name="taken", env=[EnvVar(name="K", secret_value="v")]), fake_run()
        )
    assert info.value.field == "name"
    assert len(jobs(kube_emulator)) == 1
    # the Secret made for the refused job does not outlive the refusal
    assert kube_emulator.store.list(SECRET_KIND, "default")[0] == []


def test_k3_conflict_409_is_retried_not_taken_for_already_exists(
    kube_emulator: KubeEmulator,
) -> None:
    backend, sleeps = backend_with_sleeps(kube_emulator)
    kube_emulator.faults.fail_next(1, method="POST", path="/jobs$", status=409)
    backend.submit(py_job(QUICK), fake_run())
    assert len(jobs(kube_emulator)) == 1
    assert len(sleeps) == 1


def test_k4_429_honours_retry_after_and_gives_up_after_bounded_attempts(
    kube_emulator: KubeEmulator,
) -> None:
    backend, sleeps = backend_with_sleeps(kube_emulator)
    kube_emulator.faults.fail_next(1, method="POST", path="/jobs$", status=429, retry_after=7)
    backend.submit(py_job(QUICK), fake_run())
    assert sleeps[0] >= 7
    kube_emulator.faults.fail_next(50, method="POST", path="/jobs$", status=429, retry_after=7)
    with pytest.raises(ServiceUnavailable, match="HTTP 429"):
        backend.submit(py_job(QUICK), fake_run())
    assert len(sleeps) == 1 + backend.kube.retry.attempts - 1
    assert len(jobs(kube_emulator)) == 1


def test_k5_503_with_retry_after_is_retried(kube_emulator: KubeEmulator) -> None:
    backend, sleeps = backend_with_sleeps(kube_emulator)
    kube_emulator.faults.fail_next(1, method="POST", path="/jobs$", status=503, retry_after=1)
    backend.submit(py_job(QUICK), fake_run())
    assert sleeps
    assert sleeps[0] >= 1
    assert len(jobs(kube_emulator)) == 1


def test_k6_rotated_token_is_reloaded_once_mid_wait(
    kube_cluster: KubeEmulator, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    first = kube_cluster.add_token("trainer", ADMIN)
    config = kube_cluster.write_kubeconfig(tmp_path / "rotating", token=first)
    backend = backend_for(kube_cluster, relist_interval=0.5)
    backend._kube = Kube(settings_for(kube_cluster, kubeconfig=config))
    handle = backend.submit(py_job("import time; time.sleep(1.5)"), fake_run())
    # the token is rotated: the file gets the new one, the old one stops working
    kube_cluster.write_kubeconfig(config, token=kube_cluster.add_token("trainer", ADMIN))
    kube_cluster.auth.revoke(first)
    with caplog.at_level("INFO", logger="mlrelay.kube"):
        status = backend.wait(handle, timeout=30)
    assert status.state is JobState.SUCCEEDED
    assert "reloaded Kubernetes credentials" in caplog.text


def test_k6_second_401_after_reload_is_a_clear_error(kube_emulator: KubeEmulator, tmp_path) -> None:
    token = kube_emulator.add_token("trainer", ADMIN)
    config = kube_emulator.write_kubeconfig(tmp_path / "revoked", token=token)
    kube_emulator.auth.revoke(token)
    backend = backend_for(kube_emulator)
    backend._kube = Kube(settings_for(kube_emulator, kubeconfig=config), sleep=Sleeps())
    with pytest.raises(ConfigError, match="credentials") as info:
        backend.submit(py_job(QUICK), fake_run())
    assert token not in str(info.value)


def test_k7_422_fails_at_once_with_the_servers_message(kube_emulator: KubeEmulator) -> None:
    backend, sleeps = backend_with_sleeps(kube_emulator)
    message = 'Job.batch "x" is invalid: spec.template.spec.containers[0].image: Required value'
    kube_emulator.faults.fail_next(1, method="POST", path="/jobs$", status=422, message=message)
    with pytest.raises(ConfigError, match="Required value"):
        backend.submit(py_job(QUICK), fake_run())
    assert sleeps == []
    assert jobs(kube_emulator) == []


def test_k8_half_open_connection_times_out_and_reconnects(kube_emulator: KubeEmulator) -> None:
    backend, sleeps = backend_with_sleeps(kube_emulator, request_timeout=1.0)
    handle = backend.submit(py_job(QUICK), fake_run())
    hang = kube_emulator.faults.hang_next(method="GET", path=f"/jobs/{handle.job_name}$")
    started = time.monotonic()
    status = backend.status(handle)
    hang.release()
    assert status.state in (JobState.PENDING, JobState.RUNNING)
    assert time.monotonic() - started < 10
    assert len(sleeps) == 1


def test_s2_secret_value_reaches_no_log_error_or_job_spec(
    kube_emulator: KubeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "s3cr3t-canary-value-42"
    backend, _ = backend_with_sleeps(kube_emulator)
    job = py_job(QUICK, env=[EnvVar(name="API_KEY", secret_value=canary)])
    kube_emulator.faults.fail_next(50, method="POST", path="/jobs$", status=500)
    with caplog.at_level("DEBUG"), pytest.raises(ServiceUnavailable) as info:
        backend.submit(job, fake_run())
    assert canary not in str(info.value)
    assert canary not in repr(info.value)
    assert canary not in caplog.text
    assert kube_emulator.store.list(SECRET_KIND, "default")[0] == []  # nothing orphaned
    kube_emulator.faults.clear()
    handle = backend.submit(job, fake_run())
    (made,) = jobs(kube_emulator)
    assert canary not in str(made)
    (env_ref,) = [
        e
        for e in made["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "API_KEY"
    ]
    assert env_ref["valueFrom"]["secretKeyRef"]["name"] == f"{handle.job_name}-env"
    secret = backend.kube.get(SECRETS, f"{handle.job_name}-env")
    assert secret["metadata"]["ownerReferences"][0]["name"] == handle.job_name
    assert canary not in caplog.text


def test_host_and_token_settings_connect_without_a_kubeconfig(kube_emulator: KubeEmulator) -> None:
    from mlrelay.settings import KubernetesSettings

    settings = KubernetesSettings(
        host=kube_emulator.url, token=kube_emulator.token, ca_file=kube_emulator.ca_file
    )
    backend = backend_for(kube_emulator, kube=Kube(settings))
    backend.submit(py_job(QUICK), fake_run())
    assert len(jobs(kube_emulator)) == 1
    assert kube_emulator.token not in repr(settings)


def test_unreadable_kubeconfig_is_a_config_error_naming_the_setting(tmp_path) -> None:
    from mlrelay.settings import KubernetesSettings

    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as info:
        Kube(KubernetesSettings(kubeconfig=missing))
    assert info.value.field == "kubeconfig"
    assert str(missing) in str(info.value)


def test_a_create_that_committed_but_failed_on_our_side_leaves_no_job(
    kube_emulator: KubeEmulator,
) -> None:
    """The server made the Job, we never got the answer and gave up (no retries left, or the
    task was interrupted while the answer was on its way): the Job must not run unowned."""
    from mlrelay.kube.retry import RetryPolicy

    kube = Kube(settings_for(kube_emulator), retry=RetryPolicy(attempts=1), sleep=Sleeps())
    backend = backend_for(kube_emulator, kube=kube)
    kube_emulator.faults.lose_response_next(method="POST", path="/jobs$")
    job = py_job(QUICK, env=[EnvVar(name="K", secret_value="v")])
    with pytest.raises(ServiceUnavailable):
        backend.submit(job, fake_run())
    assert jobs(kube_emulator) == []
    assert kube_emulator.store.list(SECRET_KIND, "default")[0] == []


def test_o1_an_interrupt_after_the_create_but_before_the_handle_leaves_no_job(
    kube_emulator: KubeEmulator,
) -> None:
    """Dagster's termination raises inside whatever line is running; if that is the log line
    right after the Job was made, the caller never holds a handle to cancel it with."""

    class Interrupted(BaseException):
        pass

    def interrupt(message: str) -> None:
        if message.startswith("created"):
            raise Interrupted

    backend = backend_for(kube_emulator, log=interrupt)
    with pytest.raises(Interrupted):
        backend.submit(py_job(QUICK), fake_run())
    assert jobs(kube_emulator) == []


def test_k7_a_namespace_that_does_not_exist_is_a_config_error_with_the_servers_message(
    kube_emulator: KubeEmulator,
) -> None:
    """A 404 on create is not "the object is gone": the collection itself is missing."""
    backend = backend_for(kube_emulator, kube=Kube(settings_for(kube_emulator, namespace="nope")))
    with pytest.raises(ConfigError) as info:
        backend.submit(py_job(QUICK), fake_run())
    assert info.value.field == "namespace"
    assert 'namespaces "nope" not found' in str(info.value)
    assert jobs(kube_emulator) == []
