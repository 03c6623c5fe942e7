"""The at-risk export on a hand-made marts.customer_risk: drivers in words, filters
and their validation, sort order, PII, the atomic writers, the published set and the CLI.

The table's scores follow the shipped weights (sum 13): failed_payments 3 (saturation
2), overdue_mrr_multiple 3 (1), billing_complaints 2 (2), error_credit_notes 2 (1),
low_clarity_scores 1 (1), nps_detractor 1 (1), downgrades 1 (1); contributions are
rounded to 4 decimals like the mart's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from orchestration.lib.at_risk_export import (
    EXPORT_COLUMNS,
    AtRiskFilter,
    ExportArgumentError,
    RiskWording,
    WarehouseNotReady,
    drivers_sql,
    export_defaults,
    parse_formats,
    parse_segments,
    risk_wording,
    segment_choices,
    select_at_risk,
    write_export,
    write_frame,
)
from orchestration.lib.policy import load_policy
from orchestration.lib.settings import POLICY_PATH

CONTRIBUTIONS = (
    "failed_payments",
    "overdue_mrr_multiple",
    "billing_complaints",
    "error_credit_notes",
    "low_clarity_scores",
    "nps_detractor",
    "downgrades",
)
RISK_DDL = f"""
create table marts.customer_risk (
    customer_id varchar, as_of_month date, company_size varchar, region varchar, tier varchar,
    billing_period varchar, acquisition_channel varchar, tenure_band varchar, tenure_months bigint,
    risk_score double, risk_rank bigint, top_risk_driver varchar, risk_drivers varchar,
    failed_payments bigint, billing_complaints bigint, error_credit_notes bigint, low_clarity_scores bigint,
    lowest_clarity_score integer, latest_nps_score integer, nps_detractor integer, downgrades bigint,
    overdue_balance_usd decimal(38, 4), overdue_mrr_multiple double,
    {", ".join(f"{name}_contribution double" for name in CONTRIBUTIONS)},
    current_mrr_usd decimal(18, 4), expected_residual_lifetime_usd decimal(18, 2),
    value_at_risk_usd decimal(18, 2), residual_lifetime_null_reason varchar
)
"""
ZERO_DRIVERS = {
    "failed_payments": 0,
    "billing_complaints": 0,
    "error_credit_notes": 0,
    "low_clarity_scores": 0,
    "lowest_clarity_score": None,
    "latest_nps_score": None,
    "nps_detractor": 0,
    "downgrades": 0,
    "overdue_balance_usd": 0,
    "overdue_mrr_multiple": 0.0,
    **{f"{name}_contribution": 0.0 for name in CONTRIBUTIONS},
}
ONE_13TH = 0.0769  # 1 / 13
TWO_13THS = 0.1538
THREE_13THS = 0.2308

# id: segment, drivers, value; the expected words are worked out beside each row.
CUSTOMERS = [
    # 2 failed payments (3 x min(1, 2/2) / 13) + 1 clarity answer of 1 (1/13) = 0.3077
    #   -> "2 failed payments in 90 days; clarity score 1/5 in 90 days"
    dict(
        customer_id="cus_01", company_size="enterprise", region="emea", risk_score=0.3077, value_at_risk_usd="900.00",
        current_mrr_usd="250", failed_payments=2, failed_payments_contribution=THREE_13THS,
        low_clarity_scores=1, lowest_clarity_score=1, low_clarity_scores_contribution=ONE_13TH,
    ),
    # 1,234 USD overdue on 1,000 MRR (1.234x, saturated: 3/13) + 1 error credit note (2/13) = 0.3846
    #   -> "1,234.00 USD overdue (1.2x MRR); 1 credit note for a billing error in 90 days"
    dict(
        customer_id="cus_02", company_size="mid_market", region="apac", risk_score=0.3846, value_at_risk_usd="500.00",
        current_mrr_usd="1000", overdue_balance_usd="1234", overdue_mrr_multiple=1.234,
        overdue_mrr_multiple_contribution=THREE_13THS, error_credit_notes=1, error_credit_notes_contribution=TWO_13THS,
    ),
    # 1 billing ticket (2 x 1/2 / 13), NPS 3 (1/13), 1 downgrade (1/13): three equal shares, listed
    # in the policy's order -> "1 billing ticket in 90 days; NPS 3/10; 1 downgrade in 90 days"; no size
    dict(
        customer_id="cus_03", company_size=None, region="apac", risk_score=THREE_13THS, value_at_risk_usd=None,
        current_mrr_usd="80", billing_complaints=1, billing_complaints_contribution=ONE_13TH,
        latest_nps_score=3, nps_detractor=1, nps_detractor_contribution=ONE_13TH,
        downgrades=1, downgrades_contribution=ONE_13TH,
        residual_lifetime_null_reason="no sBG fit for company_size unknown nor for all customers on month billing",
    ),
    # nothing: score 0, never exported
    dict(customer_id="cus_04", company_size="enterprise", region="emea", risk_score=0.0, value_at_risk_usd="0.00",
         current_mrr_usd="400"),
    # 2 clarity answers, lowest 2 (1 x min(1, 2/1) / 13) -> "2 low clarity scores in 90 days (lowest 2/5)"
    dict(
        customer_id="cus_05", company_size="smb", region="north_america", risk_score=ONE_13TH,
        value_at_risk_usd="900.00", current_mrr_usd="90", low_clarity_scores=2, lowest_clarity_score=2,
        low_clarity_scores_contribution=ONE_13TH,
    ),
    # overdue with no MRR counts as saturated (3/13) > 1 failed payment (3 x 1/2 / 13 = 0.1154): 0.3462
    #   -> "50.00 USD overdue (no MRR); 1 failed payment in 90 days"
    dict(
        customer_id="cus_06", company_size="enterprise", region="apac", risk_score=0.3462, value_at_risk_usd=None,
        current_mrr_usd=None, overdue_balance_usd="50", overdue_mrr_multiple=1.0,
        overdue_mrr_multiple_contribution=THREE_13THS, failed_payments=1, failed_payments_contribution=0.1154,
        residual_lifetime_null_reason="no MRR: a live item has no price-book price",
    ),
    # 1 downgrade (1/13), worth 0.00 (not unknown: it sorts before the null values)
    dict(
        customer_id="cus_07", company_size="smb", region="emea", risk_score=ONE_13TH, value_at_risk_usd="0.00",
        current_mrr_usd="10", downgrades=1, downgrades_contribution=ONE_13TH,
    ),
    # same value and score as cus_05: the id breaks the tie
    dict(
        customer_id="cus_08", company_size="smb", region="north_america", risk_score=ONE_13TH,
        value_at_risk_usd="900.00", current_mrr_usd="300", downgrades=1, downgrades_contribution=ONE_13TH,
    ),
]  # fmt: skip
EXPECTED_DRIVERS = {
    "cus_01": "2 failed payments in 90 days; clarity score 1/5 in 90 days",
    "cus_02": "1,234.00 USD overdue (1.2x MRR); 1 credit note for a billing error in 90 days",
    "cus_03": "1 billing ticket in 90 days; NPS 3/10; 1 downgrade in 90 days",
    "cus_04": "none",
    "cus_05": "2 low clarity scores in 90 days (lowest 2/5)",
    "cus_06": "50.00 USD overdue (no MRR); 1 failed payment in 90 days",
    "cus_07": "1 downgrade in 90 days",
    "cus_08": "1 downgrade in 90 days",
}
# value at risk desc (null last), then score desc, then id; cus_04 (score 0) never
ALL_AT_RISK = ["cus_01", "cus_05", "cus_08", "cus_02", "cus_07", "cus_06", "cus_03"]
WINDOW_90 = RiskWording(90)


def _insert_customers(conn: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    for row in rows:
        values = {
            "as_of_month": dt.date(2025, 6, 1),
            "tier": "pro",
            "billing_period": "month",
            "acquisition_channel": "organic",
            "tenure_band": "3-12m",
            "tenure_months": 7,
            "risk_drivers": "(the mart's own wording, not used)",
            **ZERO_DRIVERS,
            **row,
        }
        names = ", ".join(values)
        conn.execute(
            f"insert into marts.customer_risk ({names}) values ({', '.join('?' for _ in values)})",
            list(values.values()),
        )
    conn.execute(
        """
        update marts.customer_risk set risk_rank = ranked.risk_rank
        from (select customer_id, row_number() over (order by risk_score desc, customer_id) as risk_rank
              from marts.customer_risk) as ranked
        where marts.customer_risk.customer_id = ranked.customer_id
        """
    )


def _build_warehouse(conn: duckdb.DuckDBPyConnection, rows: list[dict] = CUSTOMERS) -> None:
    conn.execute("create schema marts")
    conn.execute("create schema staging")
    conn.execute(RISK_DDL)
    _insert_customers(conn, rows)
    conn.execute(
        "create table staging.stg_billing__customers (customer_id varchar, customer_name varchar, email varchar)"
    )
    for row in rows:
        number = row["customer_id"][-2:]
        conn.execute(
            "insert into staging.stg_billing__customers values (?, ?, ?)",
            [row["customer_id"], f"Customer {number} Ltd", f"billing+{number}@customer{number}.test"],
        )


@pytest.fixture()
def conn():
    with duckdb.connect() as connection:
        _build_warehouse(connection)
        yield connection


def _ids(frame: pl.DataFrame) -> list[str]:
    return frame["customer_id"].to_list()


# --- drivers in words ----------------------------------------------------------------------


def test_each_driver_is_said_in_words_strongest_first_with_ties_in_the_policy_order(conn):
    words = dict(
        conn.execute(
            f"select customer_id, {drivers_sql(WINDOW_90, _risk_columns(conn))} from marts.customer_risk"
        ).fetchall()
    )
    assert words == EXPECTED_DRIVERS


def test_the_words_state_the_configured_window_not_a_fixed_one(conn):
    sql = drivers_sql(RiskWording(30), _risk_columns(conn))
    (words,) = conn.execute(f"select {sql} from marts.customer_risk where customer_id = 'cus_01'").fetchall()[0]
    assert words == "2 failed payments in 30 days; clarity score 1/5 in 30 days"
    # the shipped policy counts the drivers over 90 days
    assert risk_wording(load_policy(POLICY_PATH)).window_days == 90


def test_a_driver_weighted_zero_or_left_out_of_the_policy_is_not_named():
    # weights without downgrades' (0): 2 failed payments weigh 3 / 12 = 0.25
    row = dict(
        customer_id="cus_09", company_size="smb", region="emea", risk_score=0.25, value_at_risk_usd="10.00",
        current_mrr_usd="10", failed_payments=2, failed_payments_contribution=0.25, downgrades=1,
    )  # fmt: skip
    with duckdb.connect() as connection:
        _build_warehouse(connection, [row])
        sql = drivers_sql(WINDOW_90, _risk_columns(connection))
        assert connection.execute(f"select {sql} from marts.customer_risk").fetchall() == [
            ("2 failed payments in 90 days",)
        ]
        # a policy without the driver: the mart has no downgrades_contribution column
        connection.execute("alter table marts.customer_risk drop column downgrades_contribution")
        connection.execute("update marts.customer_risk set failed_payments_contribution = 0")
        sql = drivers_sql(WINDOW_90, _risk_columns(connection))
        assert connection.execute(f"select {sql} from marts.customer_risk").fetchall() == [("none",)]


def test_the_policy_window_and_driver_order_are_read_and_checked():
    wording = risk_wording({"risk": {"window_days": 60, "drivers": {"downgrades": {}, "failed_payments": {}}}})
    assert wording == RiskWording(60, ("downgrades", "failed_payments"))
    with pytest.raises(ValueError, match="risk.window_days in x.yml is 0; expected a whole number of days >= 1"):
        risk_wording({"risk": {"window_days": 0, "drivers": {}}}, "x.yml")
    with pytest.raises(ValueError, match="has no risk.window_days"):
        risk_wording({"reporting": {}})


def _risk_columns(conn) -> list[str]:
    return [row[0] for row in conn.execute("describe marts.customer_risk").fetchall()]


# --- filters and their validation ----------------------------------------------------------


def test_the_export_lists_customers_with_a_driver_by_value_at_risk_then_score_then_id(conn):
    frame = select_at_risk(conn, AtRiskFilter(), WINDOW_90)
    assert _ids(frame) == ALL_AT_RISK
    assert dict(zip(_ids(frame), frame["drivers"], strict=True)) == {
        key: value for key, value in EXPECTED_DRIVERS.items() if key != "cus_04"
    }
    assert frame.columns == [name for name in EXPORT_COLUMNS if name not in ("customer_name", "email")]
    # a missing segment value is `unknown`, as in the KPI marts
    assert frame.filter(pl.col("customer_id") == "cus_03")["company_size"].to_list() == ["unknown"]


@pytest.mark.parametrize(
    ("at_risk", "expected"),
    [
        # 0.2308 is kept (inclusive): cus_01 0.3077, cus_02 0.3846, cus_06 0.3462, cus_03 0.2308
        (AtRiskFilter(min_risk=THREE_13THS), ["cus_01", "cus_02", "cus_06", "cus_03"]),
        (AtRiskFilter(min_risk=0.35), ["cus_02"]),
        (AtRiskFilter(min_risk=0.0), ALL_AT_RISK),
        (AtRiskFilter(top_n=2), ["cus_01", "cus_05"]),
        (AtRiskFilter(top_n=50), ALL_AT_RISK),
        (AtRiskFilter(segments={"company_size": ("enterprise",)}), ["cus_01", "cus_06"]),
        # values of one dimension add up, dimensions narrow
        (AtRiskFilter(segments={"company_size": ("enterprise", "unknown"), "region": ("apac",)}), ["cus_06", "cus_03"]),
        (AtRiskFilter(segments={"company_size": ("smb",)}, min_risk=0.05, top_n=2), ["cus_05", "cus_08"]),
        (AtRiskFilter(segments={"company_size": ("mid_market",)}, min_risk=0.39), []),
    ],
)
def test_segments_minimum_risk_and_top_n_narrow_the_list(conn, at_risk, expected):
    assert _ids(select_at_risk(conn, at_risk, WINDOW_90)) == expected


def test_the_segment_choices_are_the_values_present_in_the_mart(conn):
    choices = segment_choices(conn)
    assert choices["company_size"] == ["enterprise", "mid_market", "smb", "unknown"]
    assert choices["region"] == ["apac", "emea", "north_america"]
    assert choices["tenure_band"] == ["3-12m"]


def test_an_unknown_segment_value_is_refused_with_the_values_present(conn):
    at_risk = AtRiskFilter(segments={"company_size": ("huge",)})
    with pytest.raises(ExportArgumentError) as error:
        select_at_risk(conn, at_risk, WINDOW_90)
    assert str(error.value) == "unknown company_size 'huge'; valid values: enterprise, mid_market, smb, unknown"


def test_an_unknown_segment_dimension_is_refused_with_the_dimensions():
    expected = (
        "unknown segment dimension 'size'; valid dimensions: company_size, region, tier, billing_period, "
        "acquisition_channel, tenure_band"
    )
    with pytest.raises(ExportArgumentError) as error:
        AtRiskFilter(segments={"size": ("big",)})
    assert str(error.value) == expected
    with pytest.raises(ExportArgumentError) as error:
        parse_segments(["size=big"])
    assert str(error.value) == expected
    with pytest.raises(ExportArgumentError, match="'company_size' is not dimension=value .* valid dimensions: company"):
        parse_segments(["company_size"])


def test_segment_pairs_group_by_dimension():
    pairs = ["company_size=smb", "region=emea", "company_size=enterprise", "company_size=smb"]
    assert parse_segments(pairs) == {"company_size": ("smb", "enterprise"), "region": ("emea",)}
    assert parse_segments([" tier = pro "]) == {"tier": ("pro",)}


@pytest.mark.parametrize("risk", [1.5, -0.1, float("nan"), "0.5", True])
def test_a_minimum_risk_outside_0_to_1_is_refused(risk):
    with pytest.raises(ExportArgumentError, match=r"minimum risk must be a number from 0 to 1 .*got"):
        AtRiskFilter(min_risk=risk)
    assert AtRiskFilter(min_risk=1).min_risk == 1 and AtRiskFilter(min_risk=0).min_risk == 0


def test_the_1_5_risk_message_names_the_range_and_the_value():
    with pytest.raises(ExportArgumentError) as error:
        AtRiskFilter(min_risk=1.5)
    assert str(error.value) == "minimum risk must be a number from 0 to 1 (risk_score is a share), got 1.5"


@pytest.mark.parametrize("top", [0, -3, 2.5])
def test_top_must_be_a_positive_whole_number(top):
    with pytest.raises(ExportArgumentError, match="top must be a whole number of customers >= 1"):
        AtRiskFilter(top_n=top)


def test_formats_are_csv_and_parquet_only():
    assert parse_formats("csv,parquet") == ("csv", "parquet")
    assert parse_formats(" Parquet ") == ("parquet",)
    with pytest.raises(ExportArgumentError) as error:
        parse_formats("csv,xlsx")
    assert str(error.value) == "unknown format 'xlsx'; valid formats: csv, parquet"


def test_the_export_defaults_come_from_the_policy_and_are_checked():
    shipped = export_defaults(load_policy(POLICY_PATH))
    assert (shipped.segment_dimension, shipped.min_risk) == ("company_size", 0.0)
    assert export_defaults({"exports": {"segment_dimension": "region"}}).min_risk == 0.0
    with pytest.raises(ValueError, match="x.yml has no exports.segment_dimension; set it to one of company_size"):
        export_defaults({}, "x.yml")
    with pytest.raises(ValueError, match="exports.segment_dimension in x.yml is 'plan'; valid dimensions: company"):
        export_defaults({"exports": {"segment_dimension": "plan"}}, "x.yml")
    with pytest.raises(ValueError, match="exports.min_risk in x.yml is 2; expected a number from 0 to 1"):
        export_defaults({"exports": {"segment_dimension": "tier", "min_risk": 2}}, "x.yml")


def test_a_warehouse_without_the_risk_mart_says_to_run_the_pipeline_first():
    with duckdb.connect() as connection, pytest.raises(WarehouseNotReady) as error:
        select_at_risk(connection, AtRiskFilter(), WINDOW_90)
    assert str(error.value) == "marts.customer_risk is not in the warehouse: run `billing-analytics run` first"


# --- personal data -------------------------------------------------------------------------


def test_names_and_emails_are_left_out_unless_asked_for(conn, tmp_path):
    frame = select_at_risk(conn, AtRiskFilter(), WINDOW_90)
    assert "email" not in frame.columns and "customer_name" not in frame.columns
    files = write_export(frame, tmp_path, "at_risk_customers")
    emails = [row[0] for row in conn.execute("select email from staging.stg_billing__customers").fetchall()]
    names = [row[0] for row in conn.execute("select customer_name from staging.stg_billing__customers").fetchall()]
    csv_text = (tmp_path / "at_risk_customers.csv").read_text()
    parquet_cells = pl.read_parquet(tmp_path / "at_risk_customers.parquet").select(pl.col(pl.String)).to_numpy().ravel()
    for secret in emails + names:
        assert secret not in csv_text
        assert secret not in set(parquet_cells)
    assert [(file.path.name, file.rows) for file in files] == [
        ("at_risk_customers.csv", 7),
        ("at_risk_customers.parquet", 7),
    ]


def test_include_pii_adds_the_customer_name_and_email_from_staging(conn):
    frame = select_at_risk(conn, AtRiskFilter(top_n=2, include_pii=True), WINDOW_90)
    assert frame.columns[:3] == ["customer_id", "customer_name", "email"]
    assert frame.select("customer_id", "customer_name", "email").rows() == [
        ("cus_01", "Customer 01 Ltd", "billing+01@customer01.test"),
        ("cus_05", "Customer 05 Ltd", "billing+05@customer05.test"),
    ]


# --- writing -------------------------------------------------------------------------------


def test_csv_and_parquet_hold_the_same_rows_and_values(conn, tmp_path):
    frame = select_at_risk(conn, AtRiskFilter(top_n=3), WINDOW_90)
    write_export(frame, tmp_path, "x")
    csv = pl.read_csv(tmp_path / "x.csv", infer_schema=False)
    parquet = pl.read_parquet(tmp_path / "x.parquet")
    assert csv["customer_id"].to_list() == parquet["customer_id"].to_list() == ["cus_01", "cus_05", "cus_08"]
    assert csv["value_at_risk_usd"].to_list() == ["900.00", "900.00", "900.00"]
    assert parquet["value_at_risk_usd"].to_list() == [Decimal("900.00")] * 3
    assert csv["as_of_month"].to_list() == ["2025-06-01"] * 3


def test_a_failed_write_leaves_the_previous_file_whole_and_no_temporary_file(tmp_path):
    path = tmp_path / "out.csv"
    write_frame(pl.DataFrame({"customer_id": ["cus_01"]}), path, "csv")
    before = path.read_bytes()
    nested = pl.DataFrame({"customer_id": ["cus_02"], "drivers": [["a", "b"]]})  # CSV cannot hold a list
    with pytest.raises(pl.exceptions.ComputeError):
        write_frame(nested, path, "csv")
    assert path.read_bytes() == before
    assert sorted(item.name for item in tmp_path.iterdir()) == ["out.csv"]


# --- the published set (the Dagster asset's work) ------------------------------------------


def test_the_published_set_has_one_file_pair_per_segment_and_a_manifest(conn, tmp_path):
    from orchestration.defs.publish.exports_asset import publish_at_risk_exports

    generated_at = dt.datetime(2025, 6, 3, 6, 0, tzinfo=dt.UTC)
    published = publish_at_risk_exports(conn, tmp_path, "company_size", 0.0, WINDOW_90, generated_at)
    folder = tmp_path / "exports" / "at_risk"
    assert published.folder == folder
    manifest = json.loads((folder / "manifest.json").read_text())
    # every size present in the mart gets its files: enterprise cus_01, cus_06 (cus_04 scores 0);
    # mid_market cus_02; smb cus_05, cus_08, cus_07; unknown cus_03
    rows = {entry["segment_value"]: entry["rows"] for entry in manifest["files"] if entry["format"] == "csv"}
    assert rows == {"enterprise": 2, "mid_market": 1, "smb": 3, "unknown": 1}
    assert manifest["rows"] == 7
    assert manifest["segment_dimension"] == "company_size"
    assert manifest["as_of_month"] == "2025-06-01"
    assert manifest["generated_at"] == "2025-06-03T06:00:00Z"
    assert manifest["pii_included"] is False
    assert manifest["filters"] == {"segments": {}, "min_risk": 0.0, "top_n": None, "risk_score_above_zero": True}
    assert sorted(item.name for item in folder.iterdir()) == sorted(
        [f"at_risk_company_size_{size}.{ext}" for size in rows for ext in ("csv", "parquet")] + ["manifest.json"]
    )
    smb = pl.read_csv(folder / "at_risk_company_size_smb.csv")
    assert smb["customer_id"].to_list() == ["cus_05", "cus_08", "cus_07"]
    assert pl.read_parquet(folder / "at_risk_company_size_unknown.parquet")["customer_id"].to_list() == ["cus_03"]
    for entry in manifest["files"]:
        reader = pl.read_csv if entry["format"] == "csv" else pl.read_parquet
        assert reader(folder / entry["file"]).height == entry["rows"], entry


def test_a_new_set_replaces_the_old_one_whole(conn, tmp_path):
    from orchestration.defs.publish.exports_asset import publish_at_risk_exports

    publish_at_risk_exports(conn, tmp_path, "company_size", 0.0, WINDOW_90)
    company_size_version = os.readlink(tmp_path / "exports" / "at_risk")
    publish_at_risk_exports(conn, tmp_path, "region", 0.3, WINDOW_90)
    folder = tmp_path / "exports" / "at_risk"
    # no company_size file survives in the published set
    assert sorted(item.name for item in folder.iterdir()) == sorted(
        [f"at_risk_region_{region}.{ext}" for region in ("apac", "emea", "north_america") for ext in ("csv", "parquet")]
        + ["manifest.json"]
    )
    # beside the link only the new version and the one it replaced (kept for readers still on it)
    assert folder.is_symlink()
    assert {item.name for item in folder.parent.iterdir()} == {"at_risk", company_size_version, os.readlink(folder)}
    manifest = json.loads((folder / "manifest.json").read_text())
    # score >= 0.3: cus_01 (emea), cus_02 and cus_06 (apac)
    assert {entry["segment_value"]: entry["rows"] for entry in manifest["files"]} == {
        "apac": 2,
        "emea": 1,
        "north_america": 0,
    }


def test_a_set_that_fails_half_way_leaves_the_previous_set_untouched(conn, tmp_path, monkeypatch):
    from orchestration.defs.publish import exports_asset

    exports_asset.publish_at_risk_exports(conn, tmp_path, "company_size", 0.0, WINDOW_90)
    folder = tmp_path / "exports" / "at_risk"
    before = {item.name: item.read_bytes() for item in folder.iterdir()}
    siblings = sorted(item.name for item in folder.parent.iterdir())
    calls = []

    def failing_write(frame, path, file_format):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError("disk full")
        return write_frame(frame, path, file_format)

    monkeypatch.setattr(exports_asset, "write_frame", failing_write)
    with pytest.raises(OSError, match="disk full"):
        exports_asset.publish_at_risk_exports(conn, tmp_path, "region", 0.0, WINDOW_90)
    assert {item.name: item.read_bytes() for item in folder.iterdir()} == before
    # the half-written version is deleted
    assert sorted(item.name for item in folder.parent.iterdir()) == siblings


def test_segment_values_become_safe_file_names():
    from orchestration.defs.publish.exports_asset import segment_file_stem

    assert segment_file_stem("tenure_band", "24m+") == "at_risk_tenure_band_24m_plus"
    assert segment_file_stem("tenure_band", "0-3m") == "at_risk_tenure_band_0-3m"
    assert segment_file_stem("acquisition_channel", "Paid / Search") == "at_risk_acquisition_channel_Paid_Search"


# --- the CLI -------------------------------------------------------------------------------


@pytest.fixture()
def warehouse_file(tmp_path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        _build_warehouse(connection)
    return path


def _cli(*args: str) -> int:
    from orchestration.cli import main

    return main(["export", "at-risk", *args])


def test_the_cli_writes_both_formats_and_prints_paths_and_rows(warehouse_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = _cli("--warehouse", str(warehouse_file), "--output", str(out), "--segment", "company_size=smb", "--top", "2")
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{out / 'at_risk_customers.csv'}  (2 rows)" in printed
    assert f"{out / 'at_risk_customers.parquet'}  (2 rows)" in printed
    assert pl.read_csv(out / "at_risk_customers.csv")["customer_id"].to_list() == ["cus_05", "cus_08"]


def test_the_cli_pii_file_has_its_own_name(warehouse_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert _cli("--warehouse", str(warehouse_file), "--output", str(out), "--include-pii", "--format", "csv") == 0
    assert [item.name for item in out.iterdir()] == ["at_risk_customers_pii.csv"]
    assert "billing+01@customer01.test" in (out / "at_risk_customers_pii.csv").read_text()
    assert "WITH names and emails" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--segment", "size=big"], "unknown segment dimension 'size'; valid dimensions: company_size, region"),
        (["--segment", "region=mars"], "unknown region 'mars'; valid values: apac, emea, north_america"),
        (["--min-risk", "1.5"], "minimum risk must be a number from 0 to 1 (risk_score is a share), got 1.5"),
        (["--format", "xlsx"], "unknown format 'xlsx'; valid formats: csv, parquet"),
        (["--top", "0"], "top must be a whole number of customers >= 1, got 0"),
    ],
)
def test_a_bad_argument_exits_2_with_one_line_listing_the_choices(warehouse_file, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert _cli("--warehouse", str(warehouse_file), "--output", str(out), *args) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"billing-analytics export at-risk: error: {message}")
    assert not out.exists()


def test_a_missing_warehouse_says_to_run_the_pipeline_first(tmp_path, capsys):
    missing = tmp_path / "nowhere.duckdb"
    assert _cli("--warehouse", str(missing), "--output", str(tmp_path / "out")) == 1
    assert capsys.readouterr().err == (
        f"billing-analytics export at-risk: error: no warehouse at {missing}: run `billing-analytics run` first\n"
    )
