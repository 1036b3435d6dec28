"""Deferrable waits: the triggerer follows long-running jobs so that workers are free meanwhile."""

from airflow_mlrelay.triggers.deploy import DeploymentTrigger
from airflow_mlrelay.triggers.training import TrainingJobTrigger

__all__ = ["DeploymentTrigger", "TrainingJobTrigger"]
