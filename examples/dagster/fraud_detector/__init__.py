"""The card-fraud pipeline as a Dagster asset graph (see ``definitions.py``)."""
