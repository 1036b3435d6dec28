"""The KServe and Knative rules the emulated controller follows, without any process: traffic
targets, their resolution to revisions, the rolled-out revision bookkeeping, and the router's
weighted round-robin."""

from __future__ import annotations

from typing import Any

from mlrelay.testing.kserve_revision import READY, RevisionView
from mlrelay.testing.kserve_router import _Table
from mlrelay.testing.kserve_status import compute, resolve, traffic_targets


def test_canary_splits_only_once_a_revision_was_rolled_out():
    tagged = {"serving.kserve.io/enable-tag-routing": "true"}
    latest = {"latestRevision": True, "percent": 100}
    assert traffic_targets({"canaryTrafficPercent": 10}, {}, None) == [latest]
    assert traffic_targets({}, {}, "r1") == [latest]
    assert traffic_targets({"canaryTrafficPercent": 10}, tagged, "r1") == [
        {"latestRevision": True, "percent": 10, "tag": "latest"},
        {"tag": "prev", "revisionName": "r1", "latestRevision": False, "percent": 90},
    ]
    assert traffic_targets({"canaryTrafficPercent": 100}, {}, "r1") == [latest]


def test_latest_revision_target_resolves_to_the_latest_ready_revision():
    targets = traffic_targets({"canaryTrafficPercent": 10}, {}, "r1")
    assert resolve(targets, "r1", {"r1", "r2"}, {"prev": "http://prev"}) == [
        {"revisionName": "r1", "latestRevision": True, "percent": 10},
        {
            "tag": "prev",
            "revisionName": "r1",
            "latestRevision": False,
            "percent": 90,
            "url": "http://prev",
        },
    ]
    assert resolve(targets, None, {"r1"}, {}) is None


def test_canary_zero_on_the_rolled_out_revision_hands_traffic_back_to_the_previous():
    views = [RevisionView("m-predictor-00001", READY), RevisionView("m-predictor-00002", READY)]
    obj: dict[str, Any] = {
        "metadata": {"name": "m", "generation": 4},
        "spec": {"predictor": {"canaryTrafficPercent": 0, "model": {"storageUri": "/m"}}},
        "status": {
            "components": {
                "predictor": {
                    "latestRolledoutRevision": "m-predictor-00002",
                    "previousRolledoutRevision": "m-predictor-00001",
                }
            }
        },
    }
    urls = {"url": "http://m", "tag_urls": {"prev": "http://p", "latest": "http://l"}, "now": "t"}
    first = compute(obj, views, **urls)
    rolled = first.status["components"]["predictor"]["latestRolledoutRevision"]
    assert rolled == "m-predictor-00001"
    second = compute(obj | {"status": first.status}, views, **urls)
    assert second.weights == {"m-predictor-00002": 0, "m-predictor-00001": 100}
    assert second.tags == {"prev": "m-predictor-00001"}


def test_weighted_round_robin_is_exact_in_every_window():
    table = _Table({"new": 10, "old": 90})
    picks = [table.pick() for _ in range(200)]
    assert all(picks[i : i + 10].count("new") == 1 for i in range(191))
    assert _Table({"old": 0}).pick() is None
