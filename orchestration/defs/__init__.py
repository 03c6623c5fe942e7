"""Dagster definitions by area: ingest, transform (dbt), and what later issues add."""
