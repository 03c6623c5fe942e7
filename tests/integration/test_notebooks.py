"""The analyst notebooks: stored without outputs, and the quickstart run on a generated world.

The quickstart is executed in a real Jupyter kernel (the environment's ipykernel,
kernel `python3`) against the shared KPI world's warehouse, the way an analyst
runs it. Its answers (the dict its last cell prints) are checked against
queries written here from the definitions in metrics.md, on tables other than
the ones the notebook reads where there is one, never against the notebook's
own output. The executed copy is kept under test-artifacts/notebooks/.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import duckdb
import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from orchestration.lib.settings import PROJECT_ROOT

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
QUICKSTART = NOTEBOOKS_DIR / "quickstart.ipynb"
ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts" / "notebooks"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
DIMENSIONS = ("company_size", "region", "tier", "billing_period", "acquisition_channel", "tenure_band")
MRR_COLUMNS = (
    "mrr_start_usd",
    "new_mrr_usd",
    "expansion_mrr_usd",
    "reactivation_mrr_usd",
    "contraction_mrr_usd",
    "churned_mrr_usd",
    "mrr_end_usd",
)
CELL_TIMEOUT_SECONDS = 600  # a stuck kernel fails the test instead of hanging it


def stored_output_problems(notebook: nbformat.NotebookNode) -> list[str]:
    """Why a notebook is not stored clean: one line per code cell that keeps outputs or an
    execution count (outputs hold one run's data and paths, and bloat every diff)."""
    problems = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {number}: {len(cell.outputs)} stored output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {number}: execution_count {cell.execution_count}")
    return problems


def execute_notebook(path: Path, warehouse: Path, executed_path: Path) -> CellExecutionError | None:
    """Run every cell of `path` in a fresh `python3` kernel reading `warehouse`, with the
    notebook's folder as working directory (as Jupyter and VS Code do); write the executed
    copy to `executed_path` whatever happens. Returns the cell error, if any."""
    notebook = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env["BILLING_WAREHOUSE_PATH"] = str(warehouse)
    # this checkout's packages, also when the environment's editable install points at another
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.pop("PLOTLY_RENDERER", None)  # test plotly's own choice of renderer in a kernel
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute(env=env)
        error = None
    except CellExecutionError as exc:
        error = exc
    executed_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, executed_path)
    return error


def _fingerprint(path: Path) -> tuple[str, int, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size, path.stat().st_mtime_ns


def _answers(notebook: nbformat.NotebookNode) -> dict:
    [cell] = [cell for cell in notebook.cells if "answers" in cell.metadata.get("tags", [])]
    printed = "".join(output.text for output in cell.outputs if output.output_type == "stream")
    return json.loads(printed)


def _months_back(month: dt.date, months: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


@pytest.fixture(scope="module")
def world(kpi_world):
    """The KPI world's warehouse and the quickstart executed on it, with the file's fingerprint
    before and after."""
    assert kpi_world["ok"], "the KPI world's pipeline run failed: see the other integration tests"
    warehouse = kpi_world["settings"].warehouse_path
    executed_path = ARTIFACTS_DIR / "quickstart.ipynb"
    before = _fingerprint(warehouse)
    error = execute_notebook(QUICKSTART, warehouse, executed_path)
    return {
        "warehouse": warehouse,
        "before": before,
        "after": _fingerprint(warehouse),
        "error": error,
        "executed": nbformat.read(executed_path, as_version=4),
    }


@pytest.fixture(scope="module")
def answers(world):
    assert world["error"] is None, f"the quickstart failed: {world['error']}"
    return _answers(world["executed"])


def _query(world, sql: str, params: list | None = None) -> pl.DataFrame:
    with duckdb.connect(str(world["warehouse"]), read_only=True) as conn:
        return conn.sql(sql, params=params).pl()


def test_every_notebook_is_stored_without_outputs_or_execution_counts():
    paths = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    assert QUICKSTART in paths
    problems = {path.name: stored_output_problems(nbformat.read(path, as_version=4)) for path in paths}
    assert problems == {path.name: [] for path in paths}, (
        "clear the outputs before committing (Jupyter or VS Code: 'Clear All Outputs', then save)"
    )


@pytest.mark.integration
def test_the_stored_output_check_flags_an_executed_notebook(world):
    problems = stored_output_problems(world["executed"])
    code_cells = sum(cell.cell_type == "code" for cell in world["executed"].cells)
    # every code cell ran (an execution count each); most also printed or drew something
    assert sum("execution_count" in problem for problem in problems) == code_cells
    assert any("stored output" in problem for problem in problems)


@pytest.mark.integration
def test_the_quickstart_runs_every_cell_without_an_error(world):
    assert world["error"] is None, f"the quickstart failed: {world['error']}"
    for cell in world["executed"].cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None, cell.source[:80]
            assert not [output for output in cell.outputs if output.output_type == "error"], cell.source[:80]


@pytest.mark.integration
def test_the_quickstart_leaves_the_warehouse_byte_for_byte_unchanged(world):
    assert world["after"] == world["before"]
    assert not world["warehouse"].with_suffix(".duckdb.wal").exists()


@pytest.mark.integration
def test_every_chart_is_a_plotly_figure_with_data_and_nothing_is_fetched_from_the_network(world):
    chart_cells = [cell for cell in world["executed"].cells if "fig.show()" in cell.source]
    assert len(chart_cells) == 5
    for cell in chart_cells:
        [figure] = [output.data[PLOTLY_MIME] for output in cell.outputs if PLOTLY_MIME in output.get("data", {})]
        assert figure["data"], cell.source[:80]
        assert all(len(trace.get("x", [])) or len(trace.get("y", [])) for trace in figure["data"]), cell.source[:80]
    everything = json.dumps([cell.get("outputs", []) for cell in world["executed"].cells])
    assert "cdn.plot.ly" not in everything
    assert 'src=\\"http' not in everything and "src='http" not in everything


@pytest.mark.integration
def test_the_error_rate_answer_is_the_biggest_rise_recomputed_from_the_invoices(world, answers):
    """Rates per segment value from marts.fct_invoices (issued, not draft; with an error credit
    note or ticket as of the run), not from kpi_invoice_error_rate."""
    rise = answers["error_rate_biggest_rise"]
    as_of, previous = dt.date.fromisoformat(answers["as_of_month"]), dt.date.fromisoformat(rise["previous_month"])
    assert previous == _months_back(as_of, 1)
    invoices = _query(
        world,
        "select * from marts.fct_invoices where status != 'draft' and issued_month in (?, ?)",
        [previous, as_of],
    )
    expected_dimensions = set()
    for dimension in DIMENSIONS:
        counts = (
            invoices.with_columns(pl.col(dimension).fill_null("unknown").alias("value"))
            .group_by("value")
            .agg(
                previous_invoices=(pl.col("issued_month") == previous).sum(),
                latest_invoices=(pl.col("issued_month") == as_of).sum(),
                previous_errors=((pl.col("issued_month") == previous) & pl.col("is_error_invoice")).sum(),
                latest_errors=((pl.col("issued_month") == as_of) & pl.col("is_error_invoice")).sum(),
            )
            .filter(
                (pl.col("previous_invoices") >= rise["min_invoices"])
                & (pl.col("latest_invoices") >= rise["min_invoices"])
            )
        )
        rates = {
            row["value"]: (
                100 * row["previous_errors"] / row["previous_invoices"],
                100 * row["latest_errors"] / row["latest_invoices"],
            )
            for row in counts.iter_rows(named=True)
        }
        if not rates:
            continue
        expected_dimensions.add(dimension)
        answer = rise["by_dimension"][dimension]
        previous_rate, latest_rate = rates[answer["segment_value"]]
        assert answer["previous_error_rate_per_100"] == pytest.approx(previous_rate, abs=0.005), dimension
        assert answer["latest_error_rate_per_100"] == pytest.approx(latest_rate, abs=0.005), dimension
        # the value named rose most (up to the marts' rounding to 2 decimals)
        biggest = max(latest - earlier for earlier, latest in rates.values())
        assert latest_rate - previous_rate == pytest.approx(biggest, abs=0.011), dimension
        assert answer["change_points"] == pytest.approx(biggest, abs=0.011), dimension
    assert set(rise["by_dimension"]) == expected_dimensions
    assert expected_dimensions, "no segment value had enough invoices: the check would be empty"


@pytest.mark.integration
def test_the_dso_answer_splits_the_receivables_by_customer_as_recomputed_from_payments_and_credit_notes(world, answers):
    """metrics.md: AR = max(0, total - succeeded payments - credit notes, each at or before the month's
    last instant) over invoices not draft, void or uncollectible, at the invoice's rate; computed here
    from fct_payments and fct_credit_notes, not from fct_invoices' balance column."""
    as_of = dt.date.fromisoformat(answers["as_of_month"])
    next_month = _months_back(as_of, -1)
    last_day = next_month - dt.timedelta(days=1)
    invoices = _query(
        world,
        "select invoice_id, customer_id, total_amount, usd_per_unit, due_at from marts.fct_invoices "
        "where status not in ('draft', 'void', 'uncollectible') and issued_at < ?",
        [next_month],
    )
    paid = _query(
        world,
        "select invoice_id, sum(amount) as paid from marts.fct_payments "
        "where is_succeeded and attempted_at < ? group by invoice_id",
        [next_month],
    )
    credited = _query(
        world,
        "select invoice_id, sum(amount) as credited from marts.fct_credit_notes "
        "where issued_at < ? group by invoice_id",
        [next_month],
    )
    balances = (
        invoices.join(paid, on="invoice_id", how="left")
        .join(credited, on="invoice_id", how="left")
        .with_columns(
            balance_usd=(
                (pl.col("total_amount") - pl.col("paid").fill_null(0) - pl.col("credited").fill_null(0)).cast(
                    pl.Float64
                )
                * pl.col("usd_per_unit")
            ).clip(lower_bound=0),
            overdue=pl.col("due_at").dt.date() < last_day,
        )
    )
    per_customer = (
        balances.filter(pl.col("balance_usd") > 0)
        .group_by("customer_id")
        .agg(
            ar_usd=pl.col("balance_usd").sum(),
            overdue_usd=pl.col("balance_usd").filter(pl.col("overdue")).sum(),
        )
        .sort("ar_usd", descending=True)
    )
    mart = _query(
        world,
        "select ar_end_usd, credit_sales_usd, days_in_month, dso_days from marts.kpi_dso "
        "where month = ? and segment_dimension = 'all'",
        [as_of],
    ).row(0, named=True)
    dso = answers["dso"]

    assert per_customer.height >= 5
    assert per_customer["ar_usd"].sum() == pytest.approx(float(mart["ar_end_usd"]), abs=0.01)
    assert dso["ar_end_usd"] == pytest.approx(float(mart["ar_end_usd"]), abs=0.005)
    assert dso["customers_ar_usd"] == pytest.approx(float(mart["ar_end_usd"]), abs=0.01)
    assert dso["dso_days"] == mart["dso_days"]
    expected_top = per_customer.head(5).iter_rows(named=True)
    for answer, expected in zip(dso["top_customers"], expected_top, strict=True):
        assert answer["customer_id"] == expected["customer_id"]
        assert answer["ar_usd"] == pytest.approx(expected["ar_usd"], abs=0.01)
        assert answer["overdue_usd"] == pytest.approx(expected["overdue_usd"], abs=0.01)
        share_of_dso = expected["ar_usd"] / float(mart["credit_sales_usd"]) * mart["days_in_month"]
        assert answer["dso_days"] == pytest.approx(share_of_dso, abs=0.006)


@pytest.mark.integration
def test_the_churn_answer_counts_the_churned_customer_months_of_the_last_12_months(world, answers):
    """From intermediate.int_customer_months (one row per customer and month), not kpi_churn:
    churners of the 12 months ending with the as-of month, by company size at the month's start."""
    churn = answers["churn_last_12_months"]
    as_of = dt.date.fromisoformat(answers["as_of_month"])
    first = _months_back(as_of, 11)
    assert churn["dimension"] == "company_size"
    assert churn["from_month"] == first.isoformat()
    churners = _query(
        world,
        "select coalesce(company_size, 'unknown') as company_size, churn_type "
        "from intermediate.int_customer_months where is_churned and month between ? and ?",
        [first, as_of],
    )
    counts = Counter(churners.iter_rows())
    assert sum(counts.values()) > 0
    assert {size for size, _ in counts} <= set(churn["segments"])
    for size, answer in churn["segments"].items():
        assert (answer["voluntary"], answer["involuntary"]) == (
            counts[size, "voluntary"],
            counts[size, "involuntary"],
        ), size


@pytest.mark.integration
def test_the_mrr_bridge_answer_closes_and_adds_up_the_customer_months(world, answers):
    bridge = answers["mrr_bridge"]
    sums = _query(
        world,
        "select " + ", ".join(f"sum({column}) as {column}" for column in MRR_COLUMNS) + " "
        "from intermediate.int_customer_months where month = ?",
        [dt.date.fromisoformat(answers["as_of_month"])],
    ).row(0, named=True)
    for column in MRR_COLUMNS:
        assert bridge[column] == pytest.approx(float(sums[column]), abs=0.005), column
    closed = (
        bridge["mrr_start_usd"]
        + bridge["new_mrr_usd"]
        + bridge["expansion_mrr_usd"]
        + bridge["reactivation_mrr_usd"]
        - bridge["contraction_mrr_usd"]
        - bridge["churned_mrr_usd"]
    )
    assert closed == pytest.approx(bridge["mrr_end_usd"], abs=0.03)
    assert bridge["mrr_start_usd"] > 0


@pytest.mark.integration
def test_the_at_risk_answer_lists_the_five_largest_values_at_risk(world, answers):
    risk = _query(world, "select customer_id, risk_score, value_at_risk_usd from marts.customer_risk")
    largest = risk.drop_nulls("value_at_risk_usd").sort("value_at_risk_usd", descending=True).head(5)
    answered = answers["top_value_at_risk"]
    assert [row["value_at_risk_usd"] for row in answered] == pytest.approx(
        [float(value) for value in largest["value_at_risk_usd"]], abs=0.005
    )
    by_customer = {row["customer_id"]: row for row in risk.iter_rows(named=True)}
    for row in answered:
        assert row["risk_score"] > 0
        assert row["risk_score"] == by_customer[row["customer_id"]]["risk_score"]
        assert row["value_at_risk_usd"] == pytest.approx(float(by_customer[row["customer_id"]]["value_at_risk_usd"]))


@pytest.mark.integration
def test_a_missing_warehouse_stops_the_quickstart_with_what_to_do(tmp_path):
    missing = tmp_path / "no_warehouse_here.duckdb"
    error = execute_notebook(QUICKSTART, missing, tmp_path / "executed.ipynb")
    assert error is not None
    assert error.ename == "FileNotFoundError"
    assert str(missing) in error.evalue and "make demo" in error.evalue
    assert not missing.exists()
