"""Deployment specs and results, shared by the local model server and KServe backends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from mlrelay._model import DNS1035Name, FieldError, Frozen
from mlrelay.registry.spec import ModelVersionRef


class Replace(Frozen):
    """Swap the whole endpoint to the new version once it is ready and passed its smoke test."""

    kind: Literal["replace"] = "replace"


class Canary(Frozen):
    """Send ``percent`` of traffic to the new version first; ``steps`` raise it before promotion.

    ``promote=False`` stops at the split (the new version serves ``percent``); deploying the
    same spec again with ``promote=True`` finishes the rollout.
    """

    kind: Literal["canary"] = "canary"
    percent: int = Field(ge=1, le=99)
    steps: list[Annotated[int, Field(ge=1, le=100)]] | None = None
    promote: bool = True

    def __init__(self, percent: int | None = None, /, **data: Any) -> None:
        # Canary(10) reads better than Canary(percent=10) in a pipeline definition.
        if percent is not None:
            data["percent"] = percent
        super().__init__(**data)

    @model_validator(mode="after")
    def _steps_only_raise_traffic(self) -> Canary:
        # Steps are applied in order: [50, 20] would move traffic back to the old version.
        steps = self.steps or []
        if steps != sorted(set(steps)) or any(s <= self.percent for s in steps):
            raise FieldError("steps", f"must rise above percent={self.percent}, each once")
        return self


Strategy = Annotated[Replace | Canary, Field(discriminator="kind")]


class DeploymentSpec(Frozen):
    """Serve one registered model version under a stable endpoint name.

    Attributes:
        sample_rows: rows for the smoke test (column -> value); the model's input example is
            used when omitted.
        smoke_test: send a V2 inference request to the new version before it takes traffic.
        ready_timeout: seconds to wait for the new version to report ready.
    """

    name: DNS1035Name
    model: ModelVersionRef
    strategy: Strategy = Field(default_factory=Replace)
    sample_rows: list[dict[str, Any]] | None = None
    smoke_test: bool = True
    ready_timeout: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    port: int | None = Field(default=None, ge=1024, le=65535)


class Deployment(Frozen):
    """An endpoint serving a model version.

    Attributes:
        url: base URL; V2 inference is ``{url}/v2/models/{name}/infer``.
        traffic: percent of requests per model version (``{"3": 90, "4": 10}``).
        promoted: whether this call moved the endpoint's traffic to the new version.
        pid: the local model server's process id (local backend only).
        timings: seconds spent per phase of this rollout (``download``, ``start_to_ready``,
            ``smoke_test``, ``total``), so a slow deploy says where its time went.
    """

    name: str
    backend: str
    url: str
    model_name: str
    model_version: str
    run_id: str | None = None
    traffic: dict[str, int] = Field(default_factory=dict)
    promoted: bool = True
    pid: int | None = None
    smoke_test: dict[str, Any] | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    created_at: datetime
