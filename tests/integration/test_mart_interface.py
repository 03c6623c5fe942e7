"""The marts' public interface (shared/spec/metrics.md): names, columns, grain, segments.

The expected column lists are copied from the spec by hand, so a renamed
column fails here before it breaks an analyst's query.
"""

from __future__ import annotations

import duckdb
import pytest

pytestmark = pytest.mark.integration

GRAIN = ["month", "segment_dimension", "segment_value"]
SPEC_COLUMNS = {
    "kpi_invoice_error_rate": [
        "invoices_issued",
        "invoices_with_error",
        "error_rate_per_100",
        "anomalies_flagged_per_100",
    ],
    "kpi_dso": [
        "credit_sales_usd",
        "ar_end_usd",
        "dso_days",
        "dso_countback_days",
        "overdue_ar_usd",
        "ar_current_usd",
        "ar_1_30_usd",
        "ar_31_60_usd",
        "ar_61_90_usd",
        "ar_90_plus_usd",
    ],
    "kpi_churn": [
        "customers_start",
        "churned",
        "churned_voluntary",
        "churned_involuntary",
        "logo_churn_rate",
        "customers_up_for_renewal",
        "renewal_churn_rate",
        "new_customers",
        "reactivated_customers",
        "mrr_start_usd",
        "new_mrr_usd",
        "expansion_mrr_usd",
        "contraction_mrr_usd",
        "churned_mrr_usd",
        "reactivation_mrr_usd",
        "mrr_end_usd",
        "gross_revenue_retention",
        "net_revenue_retention",
    ],
    "kpi_clv": ["arpa_usd", "clv_simple_usd", "sbg_alpha", "sbg_beta", "clv_sbg_usd"],
    "kpi_collections": [
        "first_attempt_failure_rate",
        "recovered_rate",
        "recovered_usd",
        "involuntary_churn_usd",
        "median_days_to_payment",
        "overdue_ar_usd",
    ],
    "kpi_customer_voice": [
        "active_customers",
        "billing_tickets_per_100",
        "invoice_clarity_mean",
        "invoice_clarity_low_share",
        "csat_mean",
        "nps",
        "nps_responses",
    ],
}
SPEC_DIMENSIONS = {"all", "company_size", "region", "tier", "billing_period", "acquisition_channel", "tenure_band"}
SPEC_VALUES = {
    "all": {"all"},
    "company_size": {"smb", "mid_market", "enterprise"},
    "region": {"north_america", "latin_america", "emea", "apac"},
    "tier": {"basic", "pro", "enterprise"},
    "billing_period": {"month", "quarter", "year"},
    "tenure_band": {"0-3m", "3-12m", "12-24m", "24m+"},
}


@pytest.fixture(scope="module")
def conn(kpi_world):
    assert kpi_world["ok"]
    with duckdb.connect(str(kpi_world["settings"].warehouse_path), read_only=True) as connection:
        yield connection


def _columns(conn, table: str) -> list[str]:
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = 'marts' and table_name = ?"
        " order by ordinal_position",
        [table],
    ).fetchall()
    return [name for (name,) in rows]


@pytest.mark.parametrize("mart", sorted(SPEC_COLUMNS))
def test_each_kpi_mart_has_the_spec_grain_first_and_every_spec_column(conn, mart):
    columns = _columns(conn, mart)
    assert columns[:3] == GRAIN
    assert set(SPEC_COLUMNS[mart]) <= set(columns)


@pytest.mark.parametrize("mart", sorted(SPEC_COLUMNS))
def test_each_kpi_mart_is_unique_on_its_grain_and_offers_every_segment_dimension(conn, mart):
    duplicates = conn.execute(
        f"select count(*) from (select {', '.join(GRAIN)} from marts.{mart} group by all having count(*) > 1)"
    ).fetchall()[0][0]
    assert duplicates == 0
    dimensions = {d for (d,) in conn.execute(f"select distinct segment_dimension from marts.{mart}").fetchall()}
    assert dimensions == SPEC_DIMENSIONS
    for dimension, allowed in SPEC_VALUES.items():
        values = {
            v
            for (v,) in conn.execute(
                f"select distinct segment_value from marts.{mart} where segment_dimension = ?", [dimension]
            ).fetchall()
        }
        assert values <= allowed | {"unknown"}, (dimension, values - allowed)
        if dimension in ("all", "company_size"):
            assert values == allowed, dimension  # every company size occurs in the generated world


def test_the_warehouse_has_the_four_layer_schemas(conn):
    schemas = {s for (s,) in conn.execute("select distinct table_schema from information_schema.tables").fetchall()}
    assert {"raw", "staging", "intermediate", "marts"} <= schemas
