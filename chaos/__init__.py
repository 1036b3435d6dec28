"""The chaos run (``make chaos``): the example pipeline through every adapter, under fire.

``python -m chaos.run`` starts one Kubernetes API emulator (Job controller, kubelet and KServe
controller running), one real MLflow server and, for Prefect, one Prefect API, then runs the
pipeline ``train on Kubernetes -> register -> promote gate -> deploy on KServe`` many times
through Airflow, Prefect and Dagster, each run in a child process so that it can be killed. A
seeded RNG decides per run: a clean run, injected API faults (the emulator's), or a kill
(SIGTERM, or SIGKILL of the process group) at a random moment followed by a retry with the same
run identity. Afterwards it checks what the promise "nothing lost, nothing leaked, clear
errors" means on the cluster and in the registry (see :mod:`chaos.checks`).
"""
