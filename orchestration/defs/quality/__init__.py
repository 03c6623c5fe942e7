"""Data-quality checks beyond dbt tests (GX suites, the anomaly gate) and the quality report."""
