"""Data-quality checks on the warehouse, run as Dagster asset checks."""
