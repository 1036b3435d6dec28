"""``TrainModelOperator``: run the user's trainer on a backend, its MLflow run created first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlrelay.exceptions import TrainingWaitFailed, core_errors
from airflow_mlrelay.links import MLflowRunLink
from airflow_mlrelay.operators._base import MLFLOW_CONN_ID, MLflowOperator, as_json, run_identity

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlrelay.training.backend import Tracked
    from mlrelay.training.spec import EnvVar, JobHandle, TrainingJob, TrainingResult

# TrainingJob fields that are operator arguments of the same name; the first ones templated.
_TEMPLATED = (
    "name", "command", "args", "image", "env", "working_dir", "labels", "experiment", "tags",
    "dataset_uri", "dataset_hash", "validation",
)  # fmt: skip
_JOB_FIELDS = (*_TEMPLATED, "node_selector", "tolerations", "service_account", "timeout", "backoff_limit")  # fmt: skip


class TrainModelOperator(MLflowOperator):
    """Train with ``mlrelay.train``; return the ``TrainingResult`` JSON (run id, metrics, model).

    Arguments are ``TrainingJob`` fields (``resources`` is ``container_resources``: the name
    is taken on every operator); ``env`` may be a ``{name: value}`` dict; ``validation`` and
    ``training_set`` (upstream results) become the run's lineage. ``backend`` is ``local``,
    ``kubernetes``, ``trainjob``, ``pytorchjob`` or ``pkg.mod:Class``, built with
    ``backend_options``. Local training runs inline; on a cluster the task defers and the
    trigger enforces an absolute deadline (job ``timeout``, task ``execution_timeout``).
    A retry adopts what its first try started; a killed task stops the job and fails.
    ``mlflow_conn_id`` is the ``mlflow`` connection (see ``MLflowOperator``).
    """

    template_fields: Sequence[str] = (*_TEMPLATED, "training_set", "backend", "namespace")
    template_fields_renderers = {"env": "json", "tags": "json", "validation": "json"}
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        name: str,
        command: Sequence[str],
        args: Sequence[str] | None = None,
        image: str | None = None,
        env: dict[str, str] | Sequence[EnvVar | dict[str, Any]] | None = None,
        working_dir: str | None = None,
        container_resources: dict[str, Any] | None = None,
        node_selector: dict[str, str] | None = None,
        tolerations: Sequence[dict[str, Any]] | None = None,
        service_account: str | None = None,
        labels: dict[str, str] | None = None,
        timeout: float | None = None,
        backoff_limit: int = 0,
        experiment: str = "mlrelay",
        tags: dict[str, str] | None = None,
        dataset_uri: str | None = None,
        dataset_hash: str | None = None,
        validation: dict[str, Any] | None = None,
        training_set: dict[str, Any] | None = None,
        backend: str = "local",
        backend_options: dict[str, Any] | None = None,
        kubernetes_conn_id: str | None = "kubernetes_default",
        namespace: str | None = None,
        deferrable: bool | None = None,
        mlflow_conn_id: str | None = MLFLOW_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.name, self.command, self.args, self.image = name, command, args or [], image
        self.env, self.working_dir, self.container_resources = env, working_dir, container_resources
        self.node_selector, self.tolerations = node_selector, tolerations
        self.service_account, self.labels, self.timeout = service_account, labels, timeout
        self.backoff_limit, self.experiment, self.tags = backoff_limit, experiment, tags
        self.dataset_uri, self.dataset_hash = dataset_uri, dataset_hash
        self.validation, self.training_set = validation, training_set
        self.backend, self.backend_options = backend, backend_options
        self.kubernetes_conn_id, self.namespace = kubernetes_conn_id, namespace
        self.deferrable = deferrable
        self._running: Tracked | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlrelay._backends import training_backend
        from airflow_mlrelay.triggers.training import TrainingJobTrigger, deadline
        from mlrelay.training import start_training, train

        with core_errors():
            job, identity = self._job(), run_identity(context)
            defer = self.backend != "local" if self.deferrable is None else self.deferrable
            options = dict(self.backend_options or {})
            if defer and self.backend == "local":  # the trainer must outlive this worker process
                options.setdefault("stop_with_caller", False)
            backend = training_backend(
                self.backend, options, kubernetes_conn_id=self.kubernetes_conn_id,
                namespace=self.namespace,
            )  # fmt: skip
            if not defer:
                from mlrelay.training.backend import Tracked

                self._running = Tracked(backend, on_submit=lambda h: self._show_run(context, h))
                result = train(job, self._running, identity=identity, settings=self.mlflow_settings)
                return self._show_run(context, result)
            handle = start_training(job, backend, identity=identity, settings=self.mlflow_settings)
            self._show_run(context, handle)
        # No defer timeout: at it Airflow would fail the task and leave the job running.
        self.defer(
            trigger=TrainingJobTrigger(
                handle=as_json(handle),
                backend=self.backend,
                backend_options=options,
                kubernetes_conn_id=self.kubernetes_conn_id,
                namespace=self.namespace,
                deadline=deadline(context, job.timeout, self.execution_timeout),
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume from the trigger's event: its final status decides; the job is not read again."""
        from mlrelay.training import finish_training
        from mlrelay.training.spec import JobHandle, JobStatus

        if event.get("error"):
            job_name = event["handle"]["job_name"]
            raise TrainingWaitFailed(f"lost track of job {job_name!r}: {event['error']}")
        with core_errors():
            result = finish_training(
                JobHandle.model_validate(event["handle"]),
                JobStatus.model_validate(event["status"]),
                settings=self.mlflow_settings,
                logs=event.get("logs") or (),
            )
        return self._show_run(context, result)

    def on_kill(self) -> None:
        """SIGTERM (or the execution timeout) while training inline: stop the job (O1).

        ``train`` then sees the job cancelled and raises ``TrainingFailed``: the task fails.
        """
        if self._running is not None and self._running.handle is not None:
            self.log.info("task killed: stopping job %r", self._running.handle.job_name)
            self._running.backend.cancel(self._running.handle)

    def _job(self) -> TrainingJob:
        from mlrelay.training.spec import TrainingJob

        fields = {f: getattr(self, f) for f in _JOB_FIELDS}
        fields["resources"] = self.container_resources
        if isinstance(self.env, dict):
            fields["env"] = [{"name": k, "value": str(v)} for k, v in self.env.items()]
        fields["command"] = [str(c) for c in self.command]
        fields["args"] = [str(a) for a in self.args]
        tset = self.training_set or {}
        fields["dataset_uri"] = self.dataset_uri or tset.get("path")
        fields["dataset_hash"] = self.dataset_hash or tset.get("data_hash")
        # Arguments left unset (or rendered empty) take the spec's defaults.
        return TrainingJob.model_validate({k: v for k, v in fields.items() if v not in (None, "")})

    def _show_run(self, context: Context, run: JobHandle | TrainingResult) -> dict[str, Any]:
        """Link the task to the MLflow run (known from the handle on); return ``run`` as JSON."""
        ids = {"run_id": run.run_id, "experiment_id": run.experiment_id}
        MLflowRunLink.persist(context, MLflowRunLink.url(self.mlflow_ui, ids))
        return as_json(run)
