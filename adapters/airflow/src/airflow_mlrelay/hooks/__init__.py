"""Hooks turn Airflow connections into the core's settings objects, and do nothing else.

Imported on first use (PEP 562): operators reach them only when a task runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = {"KubernetesSettingsHook": "kubernetes", "MLflowHook": "mlflow"}

__all__ = ["KubernetesSettingsHook", "MLflowHook"]

if TYPE_CHECKING:
    from airflow_mlrelay.hooks.kubernetes import KubernetesSettingsHook
    from airflow_mlrelay.hooks.mlflow import MLflowHook


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
