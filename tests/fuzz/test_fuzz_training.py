"""Fuzzed ``TrainingJob`` specs (FAULTS S1, S2, S3): names, resources with GPU counts, env with
secret values, tolerations, volumes, workers, labels. Each gives a valid job or a ``ConfigError``
naming the field; a valid job becomes the manifests of every cluster backend without a request
to the cluster, and its secret values appear in the Secret only, never in the Job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_support import (
    SECRET,
    Tripwire,
    dns_label,
    fuzz,
    jsonable,
    junk_scalar,
    label_maps,
    names,
    outcome,
    pod_problems,
    quantities,
    sometimes,
    tripwire,
)
from hypothesis import event, given
from hypothesis import strategies as st

from mlrelay._model import safe_name
from mlrelay.errors import ConfigError
from mlrelay.settings import KubernetesSettings
from mlrelay.training import manifests
from mlrelay.training.kubeflow import PyTorchJobBackend, TrainJobBackend
from mlrelay.training.kubernetes import KubernetesJobBackend
from mlrelay.training.spec import RunContext, RunIdentity, TrainingJob

env_names = sometimes(
    st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,10}\Z"),
    st.sampled_from(["1BAD", "A=B", "", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_TOKEN"]),
)
env_vars = st.fixed_dictionaries(
    {"name": env_names},
    optional={
        "value": sometimes(st.text(max_size=8), st.just("a\x00b")),
        "secret_value": st.just(SECRET),
        "secret_key_ref": st.fixed_dictionaries(
            {"name": sometimes(dns_label), "key": st.sampled_from(["k", ""])}
        ),
    },
)
resources = st.fixed_dictionaries(
    {},
    optional={
        "cpu": quantities,
        "memory": quantities,
        "gpu": sometimes(st.integers(0, 8), st.sampled_from([-1, 1.5, "2", "1 gpu", True, 10**20])),
        "cpu_limit": quantities,
        "memory_limit": quantities,
    },
)
tolerations = st.fixed_dictionaries(
    {},
    optional={
        "key": sometimes(dns_label, st.sampled_from(["nvidia.com/gpu", "", "bad key!"])),
        "operator": st.sampled_from(["Exists", "Equal", "In"]),
        "value": st.one_of(dns_label, st.just("")),
        "effect": st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute", "x"]),
        "toleration_seconds": st.integers(-5, 3600),
    },
)
volumes = st.fixed_dictionaries(
    {"name": sometimes(dns_label), "mount_path": st.sampled_from(["/data", "/mnt/x", "relative"])},
    optional={
        "pvc": sometimes(dns_label, st.just("Not A Claim")),
        "secret": sometimes(dns_label, st.just("bad_secret")),
        "config_map": dns_label,
        "empty_dir": st.booleans(),
        "read_only": st.booleans(),
    },
)
# What a user might write for each optional field (not all of it valid): a job draws some of
# them, and half the jobs then get one field replaced by anything at all.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "image": st.just("python:3.11"),
    "args": st.lists(sometimes(st.text(max_size=6), st.just("x\x00")), max_size=2),
    "env": st.lists(env_vars, max_size=3),
    "resources": resources,
    "tolerations": st.lists(tolerations, max_size=2),
    "volumes": st.lists(volumes, max_size=2),
    "workers": st.integers(-1, 1002),
    "labels": label_maps,
    "annotations": label_maps,
    "node_selector": label_maps,
    "timeout": sometimes(st.floats(0.1, 1e6), st.one_of(st.floats(), st.integers(-1, 0))),
    "working_dir": sometimes(st.just("/work"), st.just("w\x00")),
    "tags": st.dictionaries(st.sampled_from(["team", "mlrelay.run", "x"]), st.just("v")),
}


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    argv = st.lists(sometimes(st.text(min_size=1, max_size=6), st.just("x\x00")), max_size=3)
    command = sometimes(argv.filter(bool), st.just([]))
    data = {"name": draw(sometimes(dns_label, names)), "command": draw(command)}
    optional = sorted(PLAUSIBLE)
    for key in sorted(draw(st.sets(st.sampled_from(optional), max_size=len(optional)))):
        data[key] = draw(PLAUSIBLE[key])
    if draw(st.sampled_from((False, False, False, True))):
        data[draw(st.sampled_from(sorted(data)))] = draw(junk_scalar)
    return data


RUN = RunContext(
    run_id="0" * 32, experiment_id="1", experiment_name="e", tracking_uri="http://127.0.0.1:9"
)


@pytest.fixture(scope="module")
def wire() -> Iterator[Tripwire]:
    with tripwire() as w:
        yield w


@pytest.fixture(scope="module")
def backends(wire: Tripwire) -> list[Any]:
    """Every cluster backend, pointed at the tripwire: building manifests must not connect."""
    settings = KubernetesSettings(host=wire.host, token="t", request_timeout=1)
    return [KubernetesJobBackend(settings), PyTorchJobBackend(settings), TrainJobBackend(settings)]


def refusal(backend: Any, job: TrainingJob) -> ConfigError | None:
    try:
        backend.validate(job)
    except ConfigError as exc:
        return exc
    return None


@fuzz(300)
@given(data=jobs(), identity=st.booleans())
def test_s3_fuzzed_jobs_are_valid_or_a_config_error_and_build_without_a_request(
    data: dict[str, Any], identity: bool, backends: list[Any], wire: Tripwire
) -> None:
    job = outcome(lambda: TrainingJob(**data), TrainingJob)
    event("valid job" if job is not None else "ConfigError")
    if job is None:
        return
    who = RunIdentity(orchestrator="airflow", run_id="r", task_id="t") if identity else None
    name = who.job_name(job.name) if who else job.name
    assert len(name) <= 63
    for backend in backends:
        refused = refusal(backend, job)
        if refused is not None:  # a backend may refuse what it cannot run, but clearly
            assert refused.field in TrainingJob.model_fields, refused
            assert SECRET not in str(refused)
            continue
        body = backend.manifest(job, RUN, name, who)
        if isinstance(backend, KubernetesJobBackend):  # the pod spec every backend shares
            template = body["spec"]["template"]
            assert not pod_problems(body["metadata"], template["spec"]), data
            assert not pod_problems(template["metadata"], template["spec"]), data
        text = jsonable(body)
        assert SECRET not in text, "a secret value reached the job's manifest (S2)"
        assert body["metadata"]["name"] == name
        if manifests.has_secrets(job, RUN):
            secret = manifests.secret(job, RUN, name, dict(body["metadata"]["labels"]))
            jsonable(secret)
    assert wire.connections() == 0, "building a manifest made a request to the cluster"


@fuzz(300)
@given(parts=st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_s1_safe_name_turns_any_text_into_a_valid_job_name(parts: list[str]) -> None:
    name = safe_name(*parts)
    assert name == safe_name(*parts)
    TrainingJob(name=name, command=["python"])  # never a ConfigError
