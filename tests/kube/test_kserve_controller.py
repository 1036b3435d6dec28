"""The emulated KServe controller: InferenceServices served by the real KServe model server.

Two small sklearn models are saved as MLflow model directories once per module: A predicts
``a + b > 0``, B the opposite, so every answer says which model gave it (and the router's
``X-Mlrelay-Revision`` header says which revision). A model server start costs 6-20 s here, so
the rollout scenario is one test with four starts; the failure paths that need no server are
tested on their own (the status and routing rules without processes: test_kserve_rules.py).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from mlrelay import _proc
from mlrelay.testing.server import KubeEmulator, default_emulator

ISVC = ("serving.kserve.io", "v1beta1", "default", "inferenceservices")
ROWS = {"a": [2.0, -2.0], "b": [2.0, -2.0]}
A, B = [1, 0], [0, 1]  # what each model answers for ROWS
KUBECTL = shutil.which("kubectl")
_text: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 30}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model A under a PVC directory, model B as a plain directory, and a model that fails."""
    import mlflow
    import numpy as np
    import pandas as pd
    import sklearn
    import skops
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("kserve-models")
    rng = np.random.default_rng(7)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (x["a"] + x["b"] > 0).astype(int)
    pins = [
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"skops=={skops.__version__}",
    ]
    paths = {"pvc": root / "pvc", "a": root / "pvc" / "models" / "fraud-a", "b": root / "b"}
    for key, labels in (("a", y), ("b", 1 - y)):
        model = LogisticRegression().fit(x, labels)
        mlflow.sklearn.save_model(
            model, str(paths[key]), input_example=x.head(3), pip_requirements=pins
        )
    paths["broken"] = root / "broken"  # an MLmodel whose model file is missing
    paths["broken"].mkdir()
    shutil.copy(paths["a"] / "MLmodel", paths["broken"] / "MLmodel")
    return paths


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., tuple[KubeEmulator, Any]]]:
    """Start an emulator whose KServe controller has the given options; yields (emulator, api)."""
    running: list[tuple[KubeEmulator, Any]] = []

    def _start(**kserve: Any) -> tuple[KubeEmulator, Any]:
        emu = default_emulator(cluster={"kserve": kserve}).start()
        # From the kubeconfig, as users connect (and independent of the client's auth defaults).
        api_client = config.new_client_from_config(str(emu.write_kubeconfig(tmp_path / "kc")))
        running.append((emu, api_client))
        return emu, client.CustomObjectsApi(api_client)

    yield _start
    for emu, api_client in running:
        api_client.close()
        emu.stop()


def isvc(name: str, uri: str, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "annotations": {"serving.kserve.io/enable-tag-routing": "true"},
        },
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "mlflow"}, "storageUri": uri}}
            | predictor
        },
    }


def wait_for(
    api: Any, name: str, check: Callable[[dict[str, Any]], bool], timeout: float = 180
) -> dict[str, Any]:
    """Poll the InferenceService until ``check(obj)``; fail with its status if it never holds."""
    deadline = time.monotonic() + timeout
    while True:
        obj: dict[str, Any] = api.get_namespaced_custom_object(*ISVC, name)
        if check(obj):
            return obj
        assert time.monotonic() < deadline, f"{name} never got there: {obj.get('status')}"
        time.sleep(0.1)


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def ready(revision: str) -> Callable[[dict[str, Any]], bool]:
    """Ready with ``revision`` as the latest ready one. (observedGeneration is no help here:
    it counts the Knative Service's generations and runs ahead, see the canary step.)"""

    def check(obj: dict[str, Any]) -> bool:
        st = obj.get("status") or {}
        return (
            st.get("components", {}).get("predictor", {}).get("latestReadyRevision") == revision
            and cond(obj, "Ready")["status"] == "True"
        )

    return check


def infer(url: str, headers: dict[str, str] | None = None) -> tuple[str, list[int]]:
    body = {
        "inputs": [
            {"name": k, "shape": [len(v)], "datatype": "FP64", "data": v} for k, v in ROWS.items()
        ]
    }
    r = httpx.post(
        f"{url}/v2/models/fraud/infer", json=body, headers=headers, timeout=120, trust_env=False
    )
    assert r.status_code == 200, r.text
    revision = r.headers["x-mlrelay-revision"]
    assert r.json()["model_version"] == revision
    return revision, r.json()["outputs"][0]["data"]


def served(url: str, n: int) -> Counter[str]:
    return Counter(infer(url)[0] for _ in range(n))


def patch(api: Any, name: str, uri: str | None = None, **predictor: Any) -> dict[str, Any]:
    """Merge-patch the predictor (``canaryTrafficPercent=None`` removes the field)."""
    if uri is not None:
        predictor["model"] = {"storageUri": uri}
    body = {"spec": {"predictor": predictor}}
    result: dict[str, Any] = api.patch_namespaced_custom_object(*ISVC, name, body)
    return result


REV = [f"fraud-predictor-0000{i}" for i in range(5)]  # REV[1] is the first revision


@pytest.mark.slow
def test_canary_promote_pin_back_and_failed_canary_on_real_model_servers(start, models):
    emu, api = start(pvc_root=str(models["pvc"]), status_delay=1.0)
    controller = emu.cluster.kserve
    timings = {}

    # D5: a first deploy asking for a canary gets 100 % on its only revision.
    began = time.monotonic()
    api.create_namespaced_custom_object(
        *ISVC, isvc("fraud", "pvc://models/fraud-a", canaryTrafficPercent=10)
    )
    obj = wait_for(api, "fraud", ready(REV[1]))
    timings["first revision ready"] = time.monotonic() - began
    st, predictor = obj["status"], obj["status"]["components"]["predictor"]
    # (KServe then writes the split, 10 % + 90 %, with both targets on that revision.)
    assert _per_revision(predictor["traffic"]) == {REV[1]: 100}
    assert predictor["latestRolledoutRevision"] == predictor["latestCreatedRevision"] == REV[1]
    assert st["modelStatus"]["transitionStatus"] == "UpToDate"
    assert st["modelStatus"]["states"] == {
        "activeModelState": "Loaded",
        "targetModelState": "Loaded",
    }
    assert st["url"].startswith("http://127.0.0.1:")
    assert st["address"]["url"] == st["url"]
    url = st["url"]
    assert infer(url) == (REV[1], A)
    if KUBECTL:
        kubectl = [KUBECTL, "--kubeconfig", str(emu.kubeconfig), "get", "inferenceservices"]
        out = subprocess.run([*kubectl, "-o", "jsonpath={.items[*].status.url}"], **_text)
        assert out.stdout == url, out.stderr

    # Canary: a new model at 10 %. D2: for status_delay after the patch the status is stale, and
    # observedGeneration (the Knative Service's, which KServe rewrote when it split the traffic
    # of the first deploy) already equals the new generation: only latestCreatedRevision tells.
    # Then the new revision loads while the old one serves.
    began = time.monotonic()
    changed = patch(api, "fraud", f"file://{models['b']}", canaryTrafficPercent=10)
    assert changed["metadata"]["generation"] == 2
    stale = api.get_namespaced_custom_object(*ISVC, "fraud")
    assert stale["status"]["observedGeneration"] == 2
    assert cond(stale, "Ready")["status"] == "True"
    assert stale["status"]["components"]["predictor"]["latestCreatedRevision"] == REV[1]
    loading = wait_for(api, "fraud", lambda o: _latest_created(o) == REV[2])
    predictor = loading["status"]["components"]["predictor"]
    assert (predictor["latestCreatedRevision"], predictor["latestReadyRevision"]) == (
        REV[2],
        REV[1],
    )
    assert cond(loading, "Ready")["status"] == "Unknown"
    assert loading["status"]["modelStatus"]["transitionStatus"] == "InProgress"
    assert {t["revisionName"] for t in predictor["traffic"]} == {REV[1]}
    obj = wait_for(api, "fraud", ready(REV[2]))
    timings["canary ready"] = time.monotonic() - began
    traffic = {t["tag"]: t for t in obj["status"]["components"]["predictor"]["traffic"]}
    assert (traffic["latest"]["revisionName"], traffic["latest"]["percent"]) == (REV[2], 10)
    assert (traffic["prev"]["revisionName"], traffic["prev"]["percent"]) == (REV[1], 90)
    assert served(url, 20) == {REV[1]: 18, REV[2]: 2}  # exact: smooth weighted round-robin
    assert infer(url, {"Knative-Serving-Tag": "latest"}) == (REV[2], B)
    assert infer(traffic["prev"]["url"]) == (REV[1], A)
    pids = controller.processes("default", "fraud")
    assert set(pids) == {REV[1], REV[2]}

    # Promote: without canaryTrafficPercent the canary takes 100 % and the old server stops.
    patch(api, "fraud", canaryTrafficPercent=None)
    obj = wait_for(api, "fraud", lambda o: _rolled_out(o) == REV[2] and _ready(o))
    predictor = obj["status"]["components"]["predictor"]
    assert (predictor["latestRolledoutRevision"], predictor["previousRolledoutRevision"]) == (
        REV[2],
        REV[1],
    )
    assert [(t["revisionName"], t["percent"]) for t in predictor["traffic"]] == [(REV[2], 100)]
    assert not _proc.members(pids[REV[1]])
    assert served(url, 5) == {REV[2]: 5}

    # canaryTrafficPercent 0 on the rolled-out revision pins the traffic to the previous one,
    # which is scaled up from zero (the router holds requests meanwhile, like the activator).
    began = time.monotonic()
    patch(api, "fraud", canaryTrafficPercent=0)
    obj = wait_for(api, "fraud", lambda o: _prev(o) == (REV[1], 100) and _ready(o))
    assert _rolled_out(obj) == REV[1]
    assert infer(url) == (REV[1], A)
    timings["pin back (scale from zero)"] = time.monotonic() - began

    # D1: a canary whose model fails to load: FailedToLoad with the server's output, the
    # latest ready revision unchanged, and the earlier revisions keep serving.
    began = time.monotonic()
    patch(api, "fraud", f"file://{models['broken']}", canaryTrafficPercent=10)
    obj = wait_for(api, "fraud", lambda o: _transition(o) == "BlockedByFailedLoad")
    timings["failed canary reported"] = time.monotonic() - began
    st, predictor = obj["status"], obj["status"]["components"]["predictor"]
    failure = st["modelStatus"]["lastFailureInfo"]
    assert failure["reason"] == "ModelLoadFailed"
    assert failure["exitCode"] == 1
    assert "No such file or directory" in failure["message"]  # the end of the server's log
    assert "model.skops" in failure["message"]
    assert st["modelStatus"]["states"] == {
        "activeModelState": "Loaded",
        "targetModelState": "FailedToLoad",
    }
    assert cond(obj, "Ready")["status"] == "False"
    assert cond(obj, "PredictorReady")["reason"] == "RevisionFailed"
    assert (predictor["latestCreatedRevision"], predictor["latestReadyRevision"]) == (
        REV[3],
        REV[2],
    )
    assert served(url, 10) == {REV[1]: 9, REV[2]: 1}

    # Deleting stops every model server and the router before the object is gone.
    pids = controller.processes("default", "fraud")
    assert set(pids) == {REV[1], REV[2]}
    api.delete_namespaced_custom_object(*ISVC, "fraud")
    with pytest.raises(ApiException) as gone:
        wait_for(api, "fraud", lambda o: False, timeout=30)
    assert gone.value.status == 404
    assert all(not _proc.members(pid) for pid in pids.values())
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5, trust_env=False)
    print({k: round(v, 1) for k, v in timings.items()})


def _latest_created(obj: dict[str, Any]) -> str | None:
    return (
        (obj.get("status") or {})
        .get("components", {})
        .get("predictor", {})
        .get("latestCreatedRevision")
    )


def _rolled_out(obj: dict[str, Any]) -> str | None:
    return (
        (obj.get("status") or {})
        .get("components", {})
        .get("predictor", {})
        .get("latestRolledoutRevision")
    )


def _ready(obj: dict[str, Any]) -> bool:
    return cond(obj, "Ready")["status"] == "True"


def _transition(obj: dict[str, Any]) -> str | None:
    return (obj.get("status") or {}).get("modelStatus", {}).get("transitionStatus")


def _prev(obj: dict[str, Any]) -> tuple[str, int] | None:
    traffic = (obj.get("status") or {}).get("components", {}).get("predictor", {}).get("traffic")
    prev = [t for t in traffic or [] if t.get("tag") == "prev"]
    return (prev[0]["revisionName"], prev[0]["percent"]) if prev else None


# -- failures that need no model server ----------------------------------------------------------


def test_storage_and_spec_failures_are_reported_without_starting_a_server(start, tmp_path):
    emu, api = start(pvc_root=str(tmp_path), status_delay=2.0)
    (tmp_path / "models").mkdir()
    expected = {
        "mlflow-uri": ("models:/fraud/1", "Cannot recognize storage type for models:/fraud/1"),
        "no-claim": ("pvc://missing/fraud", 'persistentvolumeclaim "missing" not found'),
        "no-path": ("pvc://models/fraud", 'model path "/fraud" not found'),
        "no-dir": (f"file://{tmp_path}/nothing", f"Local path file://{tmp_path}/nothing does"),
    }
    for name, (uri, _) in expected.items():
        api.create_namespaced_custom_object(*ISVC, isvc(name, uri))
    no_uri = isvc("no-uri", "")
    del no_uri["spec"]["predictor"]["model"]["storageUri"]
    api.create_namespaced_custom_object(*ISVC, no_uri)
    # Inside status_delay the controller has not looked yet: no status at all.
    assert not api.get_namespaced_custom_object(*ISVC, "no-dir").get("status")

    for name, (_, message) in expected.items():
        obj = wait_for(api, name, lambda o: _transition(o) == "BlockedByFailedLoad", timeout=30)
        st = obj["status"]
        failure = st["modelStatus"]["lastFailureInfo"]
        assert failure["reason"] == "ModelLoadFailed"
        assert failure["exitCode"] == 1
        assert message in failure["message"]
        assert st["modelStatus"]["states"] == {
            "activeModelState": "",
            "targetModelState": "FailedToLoad",
        }
        assert cond(obj, "Ready")["status"] == "False"
        assert cond(obj, "PredictorRouteReady")["reason"] == "RevisionMissing"
        assert cond(obj, "IngressReady")["reason"] == "Predictor ingress not created"
        predictor = st["components"]["predictor"]
        assert predictor == {"latestCreatedRevision": f"{name}-predictor-00001"}
        assert "url" not in st
        assert st["observedGeneration"] == 1
    obj = wait_for(api, "no-uri", lambda o: _transition(o) == "InvalidSpec", timeout=30)
    assert obj["status"]["modelStatus"]["lastFailureInfo"]["reason"] == "InvalidPredictorSpec"
    assert "storageUri" in cond(obj, "PredictorReady")["message"]
    assert cond(obj, "Ready")["reason"] == "Predictor ingress not created"
    assert all(emu.cluster.kserve.processes("default", n) == {} for n in expected)

    api.delete_namespaced_custom_object(*ISVC, "no-dir")
    with pytest.raises(ApiException) as gone:
        wait_for(api, "no-dir", lambda o: False, timeout=10)
    assert gone.value.status == 404


def _per_revision(traffic: list[dict[str, Any]]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for target in traffic:
        totals[target["revisionName"]] += target["percent"]
    return dict(totals)
