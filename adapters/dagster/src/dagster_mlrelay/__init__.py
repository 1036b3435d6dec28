"""Dagster integration for mlrelay (resources, assets and checks arrive with the Dagster issue)."""
