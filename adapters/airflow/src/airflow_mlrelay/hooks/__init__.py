"""Hooks turn Airflow connections into the core's settings objects, and do nothing else."""

from airflow_mlrelay.hooks.kubernetes import KubernetesSettingsHook
from airflow_mlrelay.hooks.mlflow import MLflowHook

__all__ = ["KubernetesSettingsHook", "MLflowHook"]
