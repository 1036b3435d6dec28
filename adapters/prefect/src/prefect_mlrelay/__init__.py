"""Prefect 3 integration for mlrelay (tasks and blocks arrive with the Prefect issue)."""
