"""The at-risk exports after a real pipeline run (the session's KPI world): the Dagster
asset's per-segment set and manifest, and `billing-analytics export at-risk`, each checked
against SQL written here on marts.customer_risk."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import duckdb
import polars as pl
import pytest

from orchestration.cli import main

pytestmark = pytest.mark.integration

# Written out here rather than imported, so a change to the module's order is caught.
SQL_ORDER = "order by value_at_risk_usd desc nulls last, risk_score desc, customer_id"
WINDOWED_COUNTS = ("failed_payments", "billing_complaints", "error_credit_notes", "low_clarity_scores", "downgrades")


@pytest.fixture(scope="module")
def world(kpi_world):
    assert kpi_world["ok"], "the KPI world's pipeline run failed"
    settings = kpi_world["settings"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        at_risk = conn.sql(f"select * from marts.customer_risk where risk_score > 0 {SQL_ORDER}").pl()
        everyone = conn.sql(
            "select customer_id, coalesce(company_size, 'unknown') as company_size, risk_score from marts.customer_risk"
        ).pl()
        people = conn.sql("select customer_id, customer_name, email from staging.stg_billing__customers").pl()
    return {"settings": settings, "at_risk": at_risk, "everyone": everyone, "people": people}


def _cli(world, tmp_path, *args: str) -> int:
    settings = world["settings"]
    return main(["export", "at-risk", "--warehouse", str(settings.warehouse_path), "--output", str(tmp_path), *args])


def _secrets_in(frame: pl.DataFrame, people: pl.DataFrame) -> set[str]:
    cells = set(frame.select(pl.col(pl.String)).to_numpy().ravel())
    return cells & (set(people["email"]) | set(people["customer_name"]))


def test_the_export_asset_waits_for_the_risk_mart_and_its_checks():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey(["publish", "at_risk_exports"]))
    assert {key.to_user_string() for key in node.parent_keys} == {"marts/customer_risk"}
    assert node.group_name == "publish"
    assert node.pools == {"duckdb_warehouse"}
    # the mart's blocking check runs before it; while it fails, the export step is skipped
    mart_checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert ("marts/customer_risk", "mart_expectations") in mart_checks


def test_the_asset_writes_one_file_pair_per_company_size_adding_up_to_the_at_risk_customers(world):
    folder = world["settings"].output_dir / "exports" / "at_risk"
    manifest = json.loads((folder / "manifest.json").read_text())
    at_risk = world["at_risk"]
    assert at_risk.height > 0, "the KPI world should have customers at risk"
    # the policy's default: split by company_size, every customer with a driver (min risk 0)
    assert manifest["segment_dimension"] == "company_size"
    assert manifest["filters"]["min_risk"] == 0.0
    assert manifest["pii_included"] is False
    assert manifest["rows"] == at_risk.height
    assert manifest["as_of_month"] == at_risk["as_of_month"][0].isoformat()
    generated_at = dt.datetime.fromisoformat(manifest["generated_at"])
    assert generated_at.utcoffset() == dt.timedelta(0)

    # every size of the mart has its files, with the customers of that size scoring above 0
    expected_rows = dict(world["everyone"].group_by("company_size").agg((pl.col("risk_score") > 0).sum()).iter_rows())
    files = manifest["files"]
    for file_format in ("csv", "parquet"):
        by_size = {entry["segment_value"]: entry for entry in files if entry["format"] == file_format}
        assert {size: entry["rows"] for size, entry in by_size.items()} == expected_rows
        exported = []
        for size, entry in by_size.items():
            reader = pl.read_csv if file_format == "csv" else pl.read_parquet
            frame = reader(folder / entry["file"])
            assert frame.height == entry["rows"]
            assert set(frame["company_size"]) <= {size}
            # each file keeps the export's order
            expected_ids = at_risk.filter(pl.col("company_size").fill_null("unknown") == size)["customer_id"]
            assert frame["customer_id"].to_list() == expected_ids.to_list()
            assert not _secrets_in(frame, world["people"])
            assert "email" not in frame.columns and "customer_name" not in frame.columns
            exported.append(frame)
        assert sum(frame.height for frame in exported) == at_risk.height
    assert sorted(item.name for item in folder.iterdir()) == sorted(
        [entry["file"] for entry in files] + ["manifest.json"]
    )


def test_the_drivers_state_the_policy_window_of_90_days(world, tmp_path):
    assert _cli(world, tmp_path, "--format", "parquet") == 0
    frame = pl.read_parquet(tmp_path / "at_risk_customers.parquet")
    assert frame.height == world["at_risk"].height
    for row in frame.iter_rows(named=True):
        windowed = sum(row[name] for name in WINDOWED_COUNTS)
        assert ("in 90 days" in row["drivers"]) == (windowed > 0), row
        assert row["drivers"] != "none"
        if row["failed_payments"] > 0:
            plural = "s" if row["failed_payments"] > 1 else ""
            assert f"{row['failed_payments']} failed payment{plural} in 90 days" in row["drivers"]


def test_the_cli_export_equals_a_sql_selection_with_the_same_filters(world, tmp_path, capsys):
    settings = world["settings"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        expected = conn.sql(
            f"""
            select customer_id, risk_score, value_at_risk_usd
            from marts.customer_risk
            where risk_score > 0 and risk_score >= 0.1 and company_size in ('smb', 'mid_market')
            {SQL_ORDER}
            limit 10
            """
        ).pl()
    assert expected.height > 0, "the filter should keep some customers of the KPI world"
    code = _cli(
        world, tmp_path, "--segment", "company_size=smb", "--segment", "company_size=mid_market",
        "--min-risk", "0.1", "--top", "10",
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    csv = pl.read_csv(tmp_path / "at_risk_customers.csv", infer_schema=False)
    parquet = pl.read_parquet(tmp_path / "at_risk_customers.parquet")
    for frame in (csv, parquet):
        assert frame["customer_id"].to_list() == expected["customer_id"].to_list()
    assert parquet["risk_score"].to_list() == expected["risk_score"].to_list()
    assert parquet["value_at_risk_usd"].to_list() == expected["value_at_risk_usd"].to_list()
    assert csv["value_at_risk_usd"].to_list() == [
        None if value is None else f"{value:.2f}" for value in expected["value_at_risk_usd"]
    ]
    assert f"at_risk_customers.csv  ({expected.height:,} rows)" in printed


def test_names_and_emails_appear_only_with_include_pii(world, tmp_path):
    plain, personal = tmp_path / "plain", tmp_path / "personal"
    assert _cli(world, plain) == 0
    assert _cli(world, personal, "--include-pii") == 0
    for name in ("at_risk_customers.csv", "at_risk_customers.parquet"):
        assert name in {item.name for item in plain.iterdir()}
    default_text = (plain / "at_risk_customers.csv").read_text()
    assert not any(email in default_text for email in world["people"]["email"])
    assert not _secrets_in(pl.read_parquet(plain / "at_risk_customers.parquet"), world["people"])

    with_pii = pl.read_parquet(personal / "at_risk_customers_pii.parquet")
    assert with_pii.height == world["at_risk"].height
    expected = world["people"].filter(pl.col("customer_id").is_in(world["at_risk"]["customer_id"].implode()))
    assert with_pii.select("customer_id", "customer_name", "email").sort("customer_id").rows() == (
        expected.sort("customer_id").rows()
    )
    assert all("@" in email for email in with_pii["email"])
