"""The chaos pipeline through each adapter: train on Kubernetes -> register -> gate -> KServe.

One function per adapter, run in a chaos child process (:mod:`chaos.child`). Each takes the run's
spec and returns what the orchestrator says happened: task/step states, whether the run
succeeded, and every failure as ``{"task", "type", "module", "message"}``, read from the
orchestrator's own records (an Airflow failure callback, Prefect's final states, Dagster's step
failure events). Settings come from the environment the runner gives the child
(``MLFLOW_TRACKING_URI``, ``MLRELAY_ARTIFACT_DESTINATIONS``, ``MLRELAY_K8S_KUBECONFIG``), as a
deployment of the example would read them.

A retry (``spec["attempt"] > 1``) reuses the run identity of the first attempt the way each
orchestrator does it: Airflow the same logical date (the same task instances), Prefect the
same flow run, Dagster a re-execution whose ``root_run_id`` is the first run.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PY = ROOT / "examples" / "training" / "train.py"
GATE = {"metric": "roc_auc", "min_delta": 0.001, "on_reject": "return"}
Failure = dict[str, str]


def _failure(task: str, exc: BaseException | None, message: str = "") -> Failure:
    if exc is None:
        return {"task": task, "type": "", "module": "", "message": message[:500]}
    cls = type(exc)
    return {"task": task, "type": cls.__name__, "module": cls.__module__, "message": str(exc)[:500]}


def _training_args(spec: dict[str, Any]) -> list[str]:
    return [str(TRAIN_PY), "--training-set", spec["training_set"], "--seed", str(spec["seed"])]


# -- Airflow ------------------------------------------------------------------------------------
def run_airflow(spec: dict[str, Any]) -> dict[str, Any]:
    """``dag.test()`` of ``chaos/dags/chaos_pipeline.py`` at the run's logical date."""
    from airflow.dag_processing.dagbag import BundleDagBag

    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    if bag.import_errors:
        raise RuntimeError(f"the chaos DAG does not import: {bag.import_errors}")
    when = datetime.fromisoformat(spec["logical_date"])
    conf = {"seed": spec["seed"], "training_set": spec["training_set"]}
    dag_run = bag.get_dag("chaos_pipeline").test(run_conf=conf, logical_date=when, run_after=when)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    failures: list[Failure] = []
    recorded = Path(os.environ["CHAOS_FAILURES"])
    if recorded.exists():
        failures = [json.loads(line) for line in recorded.read_text().splitlines() if line]
    for task, state in states.items():
        known = any(f["task"] == task for f in failures)
        if state not in ("success", "skipped", "upstream_failed") and not known:
            failures.append(_failure(task, None, f"task ended {state}"))
    # ``promote`` is skipped (with ``deploy``) when the gate keeps the champion: a success.
    done = ("success", "skipped")
    ok = states.get("train") == states.get("register") == "success" and all(
        states.get(t) in done for t in ("promote", "deploy")
    )
    if not ok and not failures:  # an untyped failure: the unexplained check will name it
        failures.append(_failure("dag", None, f"dag run {dag_run.state}: {states}"))
    return {"ok": ok, "states": states, "failures": failures}


# -- Prefect ------------------------------------------------------------------------------------
def _prefect_flow() -> Any:
    from prefect import flow

    from mlrelay.registry.spec import PromotionGate
    from mlrelay.serving.spec import DeploymentSpec
    from mlrelay.training.spec import TrainingJob
    from prefect_mlrelay import deploy_model, promote_model, register_model, train_model

    quick = {"retries": 1, "retry_delay_seconds": 1}

    @flow(name="chaos-pipeline")
    def chaos_pipeline(model: str, training_set: str, seed: int) -> dict[str, Any]:
        job = TrainingJob(
            name="chaos-train",
            image="python:3.11",
            command=["python"],
            args=_training_args({"training_set": training_set, "seed": seed}),
            experiment=model,
        )
        result = train_model.with_options(**quick)(job, backend="kubernetes")
        version = register_model.with_options(**quick)(result, model)
        decision = promote_model.with_options(**quick)(version, PromotionGate(**GATE))
        if decision.promoted:
            deploy_model.with_options(**quick)(
                DeploymentSpec(name=model, model=version), backend="kserve"
            )
        return {"version": version.version, "promoted": decision.promoted}

    return chaos_pipeline


def run_prefect(spec: dict[str, Any]) -> dict[str, Any]:
    """The flow under the runner's Prefect API; a retry runs the first attempt's flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    pipeline = _prefect_flow()
    params = {"model": spec["model"], "training_set": spec["training_set"], "seed": spec["seed"]}
    id_file = Path(spec["state_dir"]) / "flow_run_id"
    with get_client(sync_client=True) as client:
        if spec["attempt"] == 1 or not id_file.exists():
            flow_run = client.create_flow_run(pipeline, parameters=params)
            id_file.write_text(str(flow_run.id))
        else:  # what a worker does with a crashed run it retries: schedule it again
            flow_run = client.read_flow_run(id_file.read_text().strip())
            client.set_flow_run_state(flow_run.id, Scheduled(), force=True)
            flow_run = client.read_flow_run(flow_run.id)
        state = run_flow(pipeline, flow_run=flow_run, parameters=params, return_type="state")
        this_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        task_runs = client.read_task_runs(flow_run_filter=this_run)
    states, failures = {}, []
    for tr in task_runs:
        if tr.state is not None:
            states[tr.name] = tr.state.type.value.lower()
    if not state.is_completed():
        exc = None
        try:
            state.result(raise_on_failure=True)
        except BaseException as error:  # the failure is what we report
            exc = error
        failures.append(_failure("flow", exc, state.message or state.name))
    return {"ok": state.is_completed(), "states": states, "failures": failures}


# -- Dagster ------------------------------------------------------------------------------------
def chaos_job() -> Any:
    """The asset job, rebuilt from the environment as Dagster rebuilds a job to run it."""
    import dagster as dg

    from dagster_mlrelay import (
        KServeResource,
        KubernetesResource,
        MLflowResource,
        build_deployment_asset,
        build_model_asset,
    )
    from mlrelay.features.spec import TrainingSet
    from mlrelay.registry.spec import PromotionGate
    from mlrelay.training.spec import TrainingJob

    model_name = os.environ["CHAOS_MODEL"]
    path = os.environ["CHAOS_TRAINING_SET"]
    value = TrainingSet(
        path=path, rows_in=1, rows_out=1, dropped_count=0, data_hash="sha256:chaos"
    ).model_dump(mode="json")

    @dg.asset(name="training_set")
    def training_set():  # type: ignore[no-untyped-def]  # Dagster reads annotations
        return dg.MaterializeResult(value=value)

    model = build_model_asset(
        "model",
        training_set=training_set,
        job=TrainingJob(
            name="chaos-train",
            image="python:3.11",
            command=["python"],
            args=[str(TRAIN_PY), "--seed", os.environ["CHAOS_SEED"]],
            experiment=model_name,
        ),
        model_name=model_name,
        gate=PromotionGate(**GATE),  # type: ignore[arg-type]
        backend="kubernetes",
    )
    endpoint = build_deployment_asset(
        "endpoint", model=model, model_name=model_name, backend="kserve"
    )
    defs = dg.Definitions(
        assets=[training_set, model, endpoint],
        jobs=[dg.define_asset_job("chaos_pipeline", executor_def=dg.in_process_executor)],
        resources={
            "mlflow": MLflowResource(),
            "kubernetes": KubernetesResource(),
            "kserve": KServeResource(),
        },
    )
    return defs.resolve_job_def("chaos_pipeline")


def run_dagster(spec: dict[str, Any]) -> dict[str, Any]:
    """``execute_job`` on the runner's instance; a retry re-executes the first run from failure
    (after marking it failed, as Dagster's run monitoring does when a run worker dies)."""
    import dagster as dg

    key = {"chaos/run": spec["key"]}
    recon = dg.reconstructable(chaos_job)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags=key), limit=1)
        options = None
        if spec["attempt"] > 1 and runs:
            parent = runs[0]
            if not parent.is_finished:
                instance.report_run_failed(parent)
            if instance.get_run_by_id(parent.run_id).is_success:  # type: ignore[union-attr]
                return {"ok": True, "states": {}, "failures": [], "note": "already succeeded"}
            options = dg.ReexecutionOptions.from_failure(parent.run_id, instance)
        with dg.execute_job(recon, instance, tags=key, reexecution_options=options) as result:
            states: dict[str, str] = {}
            failures: list[Failure] = []
            for event in result.all_events:
                if event.is_step_success:
                    states[str(event.step_key)] = "success"
                elif event.is_step_failure:
                    states[str(event.step_key)] = "failure"
                    error = event.step_failure_data.error
                    cause = error.cause if error is not None else None
                    typed = cause or error
                    failures.append(
                        {
                            "task": str(event.step_key),
                            "type": typed.cls_name if typed else "",
                            "module": "",
                            "message": (typed.message if typed else "")[:500],
                        }
                    )
            if not result.success and not failures:
                failures.append(_failure("run", None, f"run ended {result.dagster_run.status}"))
            return {"ok": result.success, "states": states, "failures": failures}


RUNNERS = {"airflow": run_airflow, "prefect": run_prefect, "dagster": run_dagster}
