"""Kubernetes plumbing shared by the cluster backends: one connection type, one retry policy,
one watch loop, one pod-log follower.

``client.Kube`` wraps the official client's ``ApiClient`` (timeouts, retries, errors mapped at the
boundary); ``watch.Informer`` is the list-then-watch loop, ``shared.INFORMERS`` runs one per
namespace and kind for every waiter of the process, and ``watch.Watch`` is how a waiter borrows
them; ``logs.follow_pods`` streams every container of a set of pods. Nothing here imports
``kubernetes`` at import time.
"""
