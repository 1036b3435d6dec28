"""The shipped Role is exactly what the training backend needs: with it a job with a secret runs,
is followed, waited on and cancelled; without any one of its rules, a clear 403."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml
from kubeflow_support import runtime
from train_support import backend_for, fake_run, py_job, settings_for

from mlrelay.errors import ConfigError
from mlrelay.kube.client import Kind, Kube
from mlrelay.testing import KubeEmulator
from mlrelay.testing.auth import Rule
from mlrelay.testing.kinds import SECRETS as SECRET_KIND
from mlrelay.training import EnvVar, JobState
from mlrelay.training.kubeflow import PyTorchJobBackend, TrainJobBackend

ROLE = resources.files("mlrelay.kube") / "manifests" / "training-role.yaml"
RUNTIMES = Kind(
    "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes", "ClusterTrainingRuntime",
    namespaced=False,
)  # fmt: skip
# Which backend uses the rule of each Kubeflow kind (the batch-Job backend uses the others).
KUBEFLOW = {"trainjobs": TrainJobBackend, "pytorchjobs": PyTorchJobBackend}


def without(rules: list[Rule], resource: str, verb: str) -> list[Rule]:
    """The Role with one verb on one resource taken out."""
    return [
        Rule(
            verbs=tuple(v for v in r.verbs if not (r.resources[0] == resource and v == verb)),
            api_groups=r.api_groups,
            resources=r.resources,
            namespaces=r.namespaces,
        )
        for r in rules
    ]


def role_rules(namespace: str = "default") -> list[Rule]:
    role = next(d for d in yaml.safe_load_all(ROLE.read_text()) if d["kind"] == "Role")
    return [
        Rule(
            verbs=tuple(r["verbs"]),
            api_groups=tuple(r["apiGroups"]),
            resources=tuple(r["resources"]),
            namespaces=(namespace,),
        )
        for r in role["rules"]
    ]


def backend_with(emulator: KubeEmulator, rules: list[Rule], tmp_path, plural: str = "jobs"):
    token = emulator.add_token("system:serviceaccount:default:mlrelay", tuple(rules))
    config = emulator.write_kubeconfig(tmp_path / "sa-kubeconfig", token=token)
    kube = Kube(settings_for(emulator, kubeconfig=config))
    if plural == "jobs":
        return backend_for(emulator, kube=kube)
    if plural == "trainjobs":  # the runtime is the platform's, created by an admin
        admin = Kube(settings_for(emulator))
        admin.create(RUNTIMES, {"apiVersion": RUNTIMES.api_version, **runtime()})
    return KUBEFLOW[plural](kube=kube, relist_interval=5.0, grace_period=2, log_linger=1.0)


def exercise(backend, emulator: KubeEmulator, plural: str = "jobs") -> None:
    """Everything a training task does: create with a Secret, wait while it runs, follow its
    logs, adopt it on a retry; cancel another; clean up after a create the server refused."""
    job = py_job(
        "import time; time.sleep(1); print('hello from the pod')",
        env=[EnvVar(name="TOKEN", secret_value="x")],
    )
    run = fake_run()
    handle = backend.submit(job, run)
    assert backend.wait(handle, timeout=30).state is JobState.SUCCEEDED
    assert any("hello from the pod" in line for line in backend.logs(handle))
    assert backend.submit(job, run).job_name == handle.job_name  # a retry adopts
    running = backend.submit(py_job("import time; time.sleep(30)"), fake_run())
    backend.cancel(running)
    assert backend.status(running).reason == "DeletedExternally"  # gone: nothing left running
    emulator.faults.fail_next(1, method="POST", path=f"/{plural}$", status=422)
    with pytest.raises(ConfigError) as refused:
        backend.submit(job.model_copy(update={"name": "refused"}), fake_run())
    if "forbidden" in str(refused.value):
        raise refused.value  # a missing permission: what the caller tests for
    assert "injected" in str(refused.value)
    secrets = [s["metadata"]["name"] for s in emulator.store.list(SECRET_KIND, "default")[0]]
    assert "refused-env" not in secrets  # the Secret made for it went with it


def test_the_shipped_role_is_enough_for_the_whole_job_lifecycle(
    kube_cluster: KubeEmulator, tmp_path
) -> None:
    exercise(backend_with(kube_cluster, role_rules(), tmp_path), kube_cluster)


@pytest.mark.parametrize(
    "dropped",
    [
        (r.resources[0], v)
        for r in role_rules()
        if r.api_groups != ("trainer.kubeflow.org",) and r.api_groups != ("kubeflow.org",)
        for v in r.verbs
    ],
    ids=lambda d: f"{d[0]}-{d[1]}",
)
def test_removing_any_rule_of_the_role_fails_with_a_clear_403(
    kube_cluster: KubeEmulator, tmp_path, dropped: tuple[str, str]
) -> None:
    resource, verb = dropped
    rules = without(role_rules(), resource, verb)
    with pytest.raises(ConfigError, match="forbidden") as info:
        exercise(backend_with(kube_cluster, rules, tmp_path), kube_cluster)
    assert f'cannot {verb} resource "{resource}"' in str(info.value)


@pytest.mark.parametrize("plural", sorted(KUBEFLOW))
def test_the_shipped_role_is_enough_for_the_kubeflow_backends(
    kube_cluster: KubeEmulator, tmp_path, plural: str
) -> None:
    exercise(backend_with(kube_cluster, role_rules(), tmp_path, plural), kube_cluster, plural)


@pytest.mark.parametrize(
    "dropped",
    [(r.resources[0], v) for r in role_rules() if r.resources[0] in KUBEFLOW for v in r.verbs],
    ids=lambda d: f"{d[0]}-{d[1]}",
)
def test_removing_any_kubeflow_rule_of_the_role_fails_with_a_clear_403(
    kube_cluster: KubeEmulator, tmp_path, dropped: tuple[str, str]
) -> None:
    resource, verb = dropped
    rules = without(role_rules(), resource, verb)
    backend = backend_with(kube_cluster, rules, tmp_path, resource)
    with pytest.raises(ConfigError, match="forbidden") as info:
        exercise(backend, kube_cluster, resource)
    assert f'cannot {verb} resource "{resource}"' in str(info.value)
