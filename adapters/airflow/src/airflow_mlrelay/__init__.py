"""Apache Airflow 3 provider for mlrelay (operators and triggers arrive with the Airflow issue)."""
