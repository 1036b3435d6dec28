"""Model registry specs and results: versions, the promotion gate and its decision."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlrelay._model import FieldError, Frozen


class ModelVersionRef(Frozen):
    """A registered model version: what deploy and lineage need to find it again.

    Attributes:
        source: the logged model it was registered from (``models:/m-...``).
        run_id: the training run; lineage goes version -> run -> job -> dataset.
    """

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    source: str | None = None
    run_id: str | None = None
    status: str = "READY"
    aliases: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``: the URI MLflow loads this exact version from."""
        return f"models:/{self.name}/{self.version}"


class PromotionGate(Frozen):
    """When a candidate may take an alias from the model that holds it.

    The candidate passes when its metric beats the champion's by at least ``min_delta``
    (in the direction ``greater_is_better`` says) and lies inside ``[min_value, max_value]``.

    Attributes:
        on_reject: ``"raise"`` raises ``ModelRejected``; ``"return"`` returns the decision.
    """

    metric: str = Field(min_length=1)
    greater_is_better: bool = True
    min_delta: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    # NaN bounds would compare False against everything and silently drop the bound.
    min_value: float | None = Field(default=None, allow_inf_nan=False)
    max_value: float | None = Field(default=None, allow_inf_nan=False)
    on_reject: Literal["raise", "return"] = "raise"

    @model_validator(mode="after")
    def _bounds_in_order(self) -> PromotionGate:
        low, high = self.min_value, self.max_value
        if low is not None and high is not None and low > high:
            raise FieldError("max_value", f"must not be below min_value={low}")
        return self


class PromotionDecision(Frozen):
    """What the gate decided and on which numbers, also recorded as tags on the candidate."""

    model_name: str
    alias: str
    metric: str
    candidate_version: str
    candidate_value: float | None
    champion_version: str | None = None
    champion_value: float | None = None
    promoted: bool
    reason: str
