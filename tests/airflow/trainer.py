"""A small trainer for the Airflow tests: a real process, quick to start (no MLflow import).

Usage: ``trainer.py MARKER SLEEP EXIT_CODE``. Each start appends ``<pid> <MLFLOW_RUN_ID>`` to
MARKER, so a test can count how many trainers ran for which run; then it prints, sleeps and
exits with EXIT_CODE.
"""

import os
import sys
import time

marker, sleep, code = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
run_id = os.environ.get("MLFLOW_RUN_ID", "")
with open(marker, "a") as f:
    f.write(f"{os.getpid()} {run_id}\n")
print(f"training in run {run_id}", flush=True)
time.sleep(sleep)
print("epoch 1: loss 0.42", flush=True)
sys.exit(code)
