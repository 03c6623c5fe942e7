"""GX suites through Dagster: a batch failing a blocking expectation is rejected whole and retried,
the ingest check blocks, and the published marts' checks pass on a real world and block on a broken mart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.defs.ingest.assets import ingest_assets
from orchestration.defs.quality.mart_checks import CHECK_NAME, PUBLISHED_MARTS, build_mart_check, mart_key
from orchestration.defs.resources import WarehouseResource

pytestmark = pytest.mark.integration


def write(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def landing(tmp_path: Path) -> Path:
    """One customer, one invoice; two invoice lines, the second on invoice in_2, which is not delivered yet;
    a ticket about an invoice nobody delivered (a warn-level reference)."""
    root = tmp_path / "landing"
    write(root / "fx_rates" / "2024-07.csv", "rate_date,currency,usd_per_unit", "2024-07-01,EUR,1.1")
    write(
        root / "customers" / "2024-07.csv",
        "customer_id,country,currency,company_size,created_at",
        "c1,DE,EUR,smb,2024-07-01T00:00:00Z",
    )
    invoice_header = (
        "invoice_id,customer_id,invoice_number,issued_at,due_at,period_start,period_end,currency,"
        "subtotal,discount_amount,tax_amount,total,status,billing_reason"
    )
    write(
        root / "invoices" / "2024-07.csv",
        invoice_header,
        "in_1,c1,N1,2024-07-01,2024-07-31,2024-07-01,2024-08-01,EUR,10.00,0.00,0.00,10.00,open,manual",
    )
    write(
        root / "invoice_lines" / "2024-07.csv",
        "line_id,invoice_id,description,quantity,unit_amount,amount,proration,period_start,period_end",
        "l1,in_1,Pro plan,1,10.00,10.00,false,2024-07-01,2024-08-01",
        "l2,in_2,Pro plan,1,10.00,10.00,false,2024-08-01,2024-09-01",
    )
    write(
        root / "support_tickets" / "2024-07.csv",
        "ticket_id,customer_id,created_at,category,status,invoice_id",
        "t1,c1,2024-07-03T09:00:00Z,billing,open,in_77",
    )
    return root


def materialize(landing: Path, warehouse: Path) -> dg.ExecuteInProcessResult:
    resource = WarehouseResource(
        warehouse_path=str(warehouse), landing_dir=str(landing), output_dir=str(landing.parent)
    )
    return dg.materialize(
        ingest_assets,
        resources={"warehouse": resource},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_a_line_on_an_unknown_invoice_rejects_its_batch_blocks_the_run_and_loads_once_the_invoice_arrives(
    landing, tmp_path
):
    warehouse = tmp_path / "warehouse.duckdb"

    first = materialize(landing, warehouse)

    assert not first.success  # the blocking check failed the invoice_lines step
    checks = evaluations(first)
    rejected = checks[("raw/invoice_lines", "batch_expectations")]
    assert not rejected.passed and rejected.severity == dg.AssetCheckSeverity.ERROR
    failures = rejected.metadata["failed_expectations"].value
    assert [(f["file"], f["expectation"], f["failing_rows"], f["examples"]) for f in failures] == [
        (
            "invoice_lines/2024-07.csv",
            "expect_column_values_to_not_be_in_set(invoice_id)",
            1,
            [{"row": 2, "invoice_id": "in_2"}],
        )
    ]
    assert all(e.passed for key, e in checks.items() if key != ("raw/invoice_lines", "batch_expectations"))
    # nothing of the rejected batch reached raw; the manifest says why, naming file, column, count and row
    assert query(warehouse, "select count(*) from raw.invoice_lines") == [(0,)]
    [(status, rows, loaded, quarantined, error)] = query(
        warehouse,
        "select status, rows_in_file, rows_loaded, rows_quarantined, error from raw._load_manifest "
        "where batch_file = 'invoice_lines/2024-07.csv'",
    )
    assert (status, rows, loaded, quarantined) == ("rejected", 2, 0, 0)
    assert error.startswith("invoice_lines/2024-07.csv: rejected, nothing loaded (retried next run): ")
    assert "1 of 2 rows reference invoice_id values absent from raw.invoices.invoice_id" in error
    assert "row 2: invoice_id='in_2'" in error
    # the warn-level reference of the ticket loaded its batch and is reported
    assert query(warehouse, "select ticket_id from raw.support_tickets") == [("t1",)]
    warnings = checks[("raw/support_tickets", "batch_expectations")].metadata["warnings"].value
    assert [(w["expectation"], w["examples"]) for w in warnings] == [
        ("expect_column_values_to_not_be_in_set(invoice_id)", [{"row": 1, "invoice_id": "in_77"}])
    ]
    # every expectation on every batch is in the check history, under the Dagster run id
    history = query(
        warehouse,
        "select target, check_name, passed, severity, rows_checked, failing_rows, examples from quality.check_runs "
        f"where layer = 'ingest' and run_id = '{first.run_id}' and target = 'invoice_lines/2024-07.csv' "
        "and not passed",
    )
    assert history == [
        (
            "invoice_lines/2024-07.csv",
            "expect_column_values_to_not_be_in_set(invoice_id)",
            False,
            "block",
            2,
            1,
            json.dumps([{"row": 2, "invoice_id": "in_2"}]),
        )
    ]
    suites_size = query(warehouse, "select count(*) from quality.check_runs where target = 'invoice_lines/2024-07.csv'")
    assert suites_size == [(9,)]  # the nine expectations of expectations/raw_invoice_lines.json

    # the invoice arrives in a later batch: the rejected lines are retried and load
    write(
        landing / "invoices" / "2024-08.csv",
        "invoice_id,customer_id,invoice_number,issued_at,due_at,period_start,period_end,currency,"
        "subtotal,discount_amount,tax_amount,total,status,billing_reason",
        "in_2,c1,N2,2024-08-01,2024-08-31,2024-08-01,2024-09-01,EUR,10.00,0.00,0.00,10.00,open,manual",
    )
    second = materialize(landing, warehouse)

    assert second.success
    assert evaluations(second)[("raw/invoice_lines", "batch_expectations")].passed
    assert query(warehouse, "select line_id from raw.invoice_lines order by 1") == [("l1",), ("l2",)]
    assert query(
        warehouse, "select status, error from raw._load_manifest where batch_file = 'invoice_lines/2024-07.csv'"
    ) == [("loaded", None)]


def test_a_rejected_parent_batch_holds_back_its_children_until_the_next_run(landing, tmp_path):
    write(
        landing / "invoices" / "2024-07.csv",
        "invoice_id,customer_id,invoice_number,issued_at,due_at,period_start,period_end,currency,"
        "subtotal,discount_amount,tax_amount,total,status,billing_reason",
        "in_1,c9,N1,2024-07-01,2024-07-31,2024-07-01,2024-08-01,EUR,10.00,0.00,0.00,10.00,open,manual",
    )
    warehouse = tmp_path / "warehouse.duckdb"

    result = materialize(landing, warehouse)

    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw/fx_rates", "raw/customers", "raw/invoices"} <= materialized
    assert not {"raw/invoice_lines", "raw/payments", "raw/credit_notes"} & materialized
    assert not evaluations(result)[("raw/invoices", "batch_expectations")].passed
    assert query(warehouse, "select source, status from raw._load_manifest where source like 'invoice%'") == [
        ("invoices", "rejected")
    ]


# --- published marts -------------------------------------------------------------------


def test_every_published_mart_check_passed_in_the_kpi_world_run(kpi_world):
    assert kpi_world["ok"]
    rows = query(
        kpi_world["settings"].warehouse_path,
        "select asset, count(*), count(*) filter (where not passed), min(rows_checked) "
        "from quality.check_runs where layer = 'mart' group by 1 order by 1",
    )
    assert [asset for asset, *_ in rows] == sorted(f"marts/{m}" for m in PUBLISHED_MARTS)
    assert [(asset, failed) for asset, _n, failed, _rows in rows if failed] == []
    assert all(checked >= 1 for asset, _n, _failed, checked in rows if asset != "marts/billing_anomalies")


def run_mart_check(model: str, warehouse: Path, with_publication: bool = False) -> dg.ExecuteInProcessResult:
    """The mart check through Dagster, with a stand-in for a publication asset downstream of the mart."""
    check = build_mart_check(model)

    @dg.asset(key=["publish", "stand_in_dashboard"], deps=[mart_key(model)])
    def stand_in_dashboard() -> None:
        """Stands in for a dashboard that reads the mart."""

    resource = WarehouseResource(warehouse_path=str(warehouse), landing_dir="unused", output_dir="unused")
    selection = dg.AssetSelection.checks(check)
    if with_publication:
        selection = selection | dg.AssetSelection.assets(stand_in_dashboard)
    defs = dg.Definitions(
        assets=[dg.AssetSpec(mart_key(model)), stand_in_dashboard],
        asset_checks=[check],
        jobs=[dg.define_asset_job("check_and_publish", selection=selection)],
        resources={"warehouse": resource},
    )
    return defs.resolve_job_def("check_and_publish").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


@pytest.fixture()
def broken_copy(kpi_world, tmp_path) -> Path:
    """The KPI world's warehouse, copied so it can be broken."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(kpi_world["settings"].warehouse_path, copy)
    return copy


def test_a_churn_rate_above_one_and_a_repeated_grain_row_fail_the_blocking_check_and_stop_publication(broken_copy):
    with duckdb.connect(str(broken_copy)) as conn:
        latest = conn.execute("select max(month) from marts.kpi_churn").fetchall()[0][0]
        conn.execute(
            "update marts.kpi_churn set logo_churn_rate = 1.5 "
            "where month = ? and segment_dimension = 'all' and segment_value = 'all'",
            [latest],
        )
        conn.execute(
            "insert into marts.kpi_churn select * from marts.kpi_churn "
            "where month = ? and segment_dimension = 'tier' and segment_value = 'pro'",
            [latest],
        )

    result = run_mart_check("kpi_churn", broken_copy, with_publication=True)

    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.check_name, evaluation.passed) == (CHECK_NAME, False)
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    failures = {f["expectation"]: f for f in evaluation.metadata["failed_expectations"].value}
    assert set(failures) == {
        "expect_column_values_to_be_between(logo_churn_rate in 0..1)",
        "expect_compound_columns_to_be_unique(month, segment_dimension, segment_value)",
    }
    rate = failures["expect_column_values_to_be_between(logo_churn_rate in 0..1)"]
    assert rate["failing_rows"] == 1
    assert rate["examples"] == [
        {"month": f"{latest}T00:00:00", "segment_dimension": "all", "segment_value": "all", "logo_churn_rate": 1.5}
    ]
    assert (
        failures["expect_compound_columns_to_be_unique(month, segment_dimension, segment_value)"]["failing_rows"] == 2
    )
    # blocking: the publication downstream of the mart did not run
    assert not result.get_asset_materialization_events()
    assert query(
        broken_copy,
        "select count(*) filter (where not passed), count(*) from quality.check_runs "
        "where layer = 'mart' and asset = 'marts/kpi_churn' and run_id = '" + result.run_id + "'",
    ) == [(2, 39)]


def test_a_mart_that_stops_before_the_data_as_of_month_fails_freshness(broken_copy):
    with duckdb.connect(str(broken_copy)) as conn:
        latest = conn.execute("select max(month) from marts.kpi_dso").fetchall()[0][0]
        conn.execute("delete from marts.kpi_dso where month = ?", [latest])
        previous = conn.execute("select max(month) from marts.kpi_dso").fetchall()[0][0]

    [evaluation] = run_mart_check("kpi_dso", broken_copy).get_asset_check_evaluations()

    failures = evaluation.metadata["failed_expectations"].value
    assert [(f["expectation"], f["examples"]) for f in failures] == [
        ("expect_column_max_to_be_between(month = as_of_month)", [f"{previous}T00:00:00"])
    ]
    assert evaluation.metadata["as_of_month"].value == str(latest)
    assert (
        f"observed '{previous}T00:00:00', expected min_value='{latest}T00:00:00', max_value='{latest}T00:00:00'"
        in (failures[0]["message"])
    )


def test_the_unbroken_mart_passes_and_lets_publication_run(broken_copy):
    result = run_mart_check("customer_risk", broken_copy, with_publication=True)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == [
        "publish/stand_in_dashboard"
    ]


def test_the_graph_ingests_parents_first_and_carries_a_blocking_check_per_batch_source_and_mart(pipeline_env):
    from orchestration.definitions import build_definitions
    from orchestration.lib.contract import SOURCE_NAMES
    from orchestration.lib.settings import Settings

    defs = build_definitions(Settings.from_env())
    graph = defs.resolve_asset_graph()

    def raw_parents(source: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(["raw", source])).parent_keys}

    assert raw_parents("fx_rates") == set()
    assert raw_parents("customers") == {"raw/fx_rates"}
    assert raw_parents("invoice_lines") == {"raw/invoices", "raw/products"}
    assert raw_parents("payments") == {"raw/invoices", "raw/customers", "raw/fx_rates"}
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {(f"raw/{s}", "batch_expectations") for s in SOURCE_NAMES} <= checks
    assert {(f"marts/{m}", CHECK_NAME) for m in PUBLISHED_MARTS} <= checks
    blocking = {
        spec.asset_key.to_user_string()
        for assets_def in graph.assets_defs
        for spec in assets_def.check_specs
        if spec.name in ("batch_expectations", CHECK_NAME) and spec.blocking
    }
    assert blocking == {f"raw/{s}" for s in SOURCE_NAMES} | {f"marts/{m}" for m in PUBLISHED_MARTS}
    # the pipeline job runs the mart checks
    job = defs.resolve_job_def("billing_pipeline")
    assert {f"marts__{m}_{CHECK_NAME}" for m in PUBLISHED_MARTS} <= set(job.graph.node_dict)
