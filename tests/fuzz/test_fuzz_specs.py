"""Fuzzed deployment specs (names, canary percent and steps, timeouts), promotion gates and
feature requests (FAULTS S1, S3): a valid object or a ``ConfigError`` naming the field; a valid
deployment becomes an InferenceService body that KServe would accept, without any request."""

from __future__ import annotations

import re
from typing import Any

from fuzz_support import dns_label, fuzz, jsonable, junk_scalar, names, outcome, sometimes
from hypothesis import event, given
from hypothesis import strategies as st

from mlrelay.features.spec import FeatureRequest
from mlrelay.registry.spec import ModelVersionRef, PromotionGate
from mlrelay.serving.isvc import Predictor, lineage_annotations
from mlrelay.serving.spec import Canary, DeploymentSpec

_ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # KServe's webhook: a DNS-1035 label
MODEL = ModelVersionRef(name="fraud", version="3")

strategies = st.one_of(
    st.fixed_dictionaries({"kind": st.just("replace")}),
    st.fixed_dictionaries(
        {"kind": st.just("canary"), "percent": sometimes(st.integers(1, 99), st.integers(-5, 150))},
        optional={
            "steps": sometimes(
                st.lists(st.integers(1, 100), max_size=4), st.lists(st.integers(-5, 150))
            ),
            "promote": st.booleans(),
        },
    ),
    junk_scalar,
)
deployments = st.fixed_dictionaries(
    {"name": sometimes(dns_label, names), "model": sometimes(st.just(MODEL.model_dump()))},
    optional={
        "strategy": strategies,
        "ready_timeout": sometimes(st.floats(0.1, 3600), st.floats()),
        "port": sometimes(st.integers(1024, 65535), st.integers(-1, 70000)),
        "smoke_test": st.booleans(),
        "sample_rows": sometimes(st.lists(st.dictionaries(dns_label, st.integers()), max_size=2)),
    },
)


@fuzz(300)
@given(data=deployments, replicas=st.integers(0, 5), cpu=st.sampled_from([None, "1", "500m"]))
def test_s3_fuzzed_deployments_are_valid_or_a_config_error_and_kserve_would_accept_them(
    data: dict[str, Any], replicas: int, cpu: str | None
) -> None:
    spec = outcome(lambda: DeploymentSpec(**data), DeploymentSpec)
    event("valid deployment" if spec is not None else "ConfigError")
    if spec is None:
        return
    assert _ISVC_NAME.match(spec.name), "KServe refuses an InferenceService name not DNS-1035"
    if isinstance(spec.strategy, Canary):
        steps = spec.strategy.steps or []
        assert steps == sorted(set(steps)), "canary steps must only raise the traffic"
        assert all(spec.strategy.percent < s for s in steps)
    resources = {"requests": {"cpu": cpu}} if cpu else None
    predictor = Predictor(min_replicas=replicas, max_replicas=replicas + 1, resources=resources)
    body = {
        "metadata": {
            "name": spec.name,
            "annotations": lineage_annotations(spec, "Serverless", "r" * 32, "sha256:x"),
        },
        "spec": {"predictor": predictor.spec("s3://bucket/model")},
    }
    jsonable(body)


@fuzz(200)
@given(percent=st.one_of(st.integers(-10, 200), junk_scalar))
def test_s3_canary_percent_is_between_1_and_99_or_a_config_error(percent: Any) -> None:
    canary = outcome(lambda: Canary(percent), Canary)
    if canary is not None:
        assert 1 <= canary.percent <= 99


gates = st.fixed_dictionaries(
    {"metric": sometimes(st.sampled_from(["auc", "f1"]), st.just(""))},
    optional={
        "greater_is_better": st.booleans(),
        "min_delta": sometimes(st.floats(0, 1), st.floats()),
        "min_value": sometimes(st.floats(-1, 1), st.floats()),
        "max_value": sometimes(st.floats(-1, 1), st.floats()),
        "on_reject": sometimes(st.sampled_from(["raise", "return"]), st.just("ignore")),
    },
)


@fuzz(300)
@given(data=gates)
def test_s3_fuzzed_promotion_gates_are_valid_or_a_config_error(data: dict[str, Any]) -> None:
    gate = outcome(lambda: PromotionGate(**data), PromotionGate)
    event("valid gate" if gate is not None else "ConfigError")
    if gate is not None:
        for bound in (gate.min_delta, gate.min_value, gate.max_value):
            assert bound is None or abs(bound) != float("inf"), "an infinite bound decides nothing"
        if gate.min_value is not None and gate.max_value is not None:
            assert gate.min_value <= gate.max_value


refs = sometimes(
    st.builds(lambda v, f: f"{v}:{f}", dns_label, dns_label),
    st.sampled_from([":x", "view:", "view", "a:b:c", " view : f ", ""]),
)
requests = st.fixed_dictionaries(
    {"repo": sometimes(st.just("feature_repo")), "output": sometimes(st.just("out.parquet"))},
    optional={
        "features": sometimes(st.lists(refs, max_size=3)),
        "feature_service": sometimes(dns_label),
        "entity_source": sometimes(st.just("entities.parquet")),
        "on_dropped": sometimes(st.sampled_from(["fail", "warn"])),
        "max_dropped_fraction": sometimes(st.floats(0, 1), st.floats()),
    },
)


@fuzz(300)
@given(data=requests)
def test_fuzzed_feature_requests_are_valid_or_a_config_error(data: dict[str, Any]) -> None:
    request = outcome(lambda: FeatureRequest(**data), FeatureRequest)
    event("valid request" if request is not None else "ConfigError")
    if request is not None:
        assert bool(request.features) != bool(request.feature_service)
        for ref in request.features:
            view, feature = ref.split(":")  # exactly one colon, as Feast parses a reference
            assert view
            assert feature
            assert view.strip() == view
            assert feature.strip() == feature
