"""Billing analytics: landing files -> DuckDB warehouse -> dbt marts -> dashboards."""
