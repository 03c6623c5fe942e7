"""dbt models as Dagster assets, plus the job, schedule and sensor that run them."""
