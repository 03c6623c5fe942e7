"""marts.billing_anomalies against the generator's ground truth (`_truth/anomalies.csv`).

On the KPI world (anomaly_rate 0.02) every type the mart builds must find the
injected documents (recall) and little else (precision), matched on
anomaly_type + invoice_id + payment_id; on a clean world (anomaly_rate 0) the
mart must be empty: a check that fires on consistent data is a false alarm.
"""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from tests.integration.conftest import KPI_DELIVERY, KPI_WORLD, generate_and_run

pytestmark = pytest.mark.integration

BUILT_TYPES = (
    "duplicate_charge",
    "total_mismatch",
    "tax_error",
    "price_mismatch",
    "discount_error",
    "currency_mismatch",
    "invoice_after_cancellation",
    "amount_spike",
)
MIN_PRECISION = 0.95
MIN_RECALL = 0.95

CLEAN_WORLD = dataclasses.replace(KPI_WORLD, customers=200, months=12, anomaly_rate=0.0)


def _keys(conn: duckdb.DuckDBPyConnection, sql: str, anomaly_type: str) -> set[tuple[str, str]]:
    return {(invoice, payment or "") for invoice, payment in conn.execute(sql, [anomaly_type]).fetchall()}


@pytest.fixture(scope="module")
def kpi_conn(kpi_world):
    assert kpi_world["ok"]
    settings = kpi_world["settings"]
    conn = duckdb.connect(str(settings.warehouse_path), read_only=True)
    truth = settings.landing_dir / "_truth" / "anomalies.csv"
    conn.execute(f"create temp table truth as select * from read_csv('{truth}', all_varchar = true)")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def clean_world(tmp_path_factory):
    settings, ok = generate_and_run(tmp_path_factory.mktemp("clean_world"), CLEAN_WORLD, KPI_DELIVERY)
    assert ok
    return settings


def test_every_built_type_is_injected_in_the_kpi_world(kpi_conn):
    injected = {t for (t,) in kpi_conn.execute("select distinct anomaly_type from truth").fetchall()}
    assert set(BUILT_TYPES) <= injected


@pytest.mark.parametrize("anomaly_type", BUILT_TYPES)
def test_precision_and_recall_per_type_against_the_truth(kpi_conn, anomaly_type):
    truth = _keys(kpi_conn, "select invoice_id, payment_id from truth where anomaly_type = ?", anomaly_type)
    found = _keys(
        kpi_conn,
        "select invoice_id, payment_id from marts.billing_anomalies where anomaly_type = ?",
        anomaly_type,
    )
    hits = len(truth & found)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth) if truth else 0.0
    print(f"{anomaly_type}: truth {len(truth)}, flagged {len(found)}, precision {precision:.3f}, recall {recall:.3f}")
    assert truth, anomaly_type
    assert precision >= MIN_PRECISION, (anomaly_type, sorted(found - truth)[:10])
    assert recall >= MIN_RECALL, (anomaly_type, sorted(truth - found)[:10])


def test_every_row_has_its_severity_and_money_at_stake(kpi_conn):
    rows = kpi_conn.execute(
        "select count(*), count(distinct anomaly_id), "
        "count(*) filter (where severity not in ('block', 'warn') or amount_at_stake_usd is null) "
        "from marts.billing_anomalies"
    ).fetchone()
    assert rows[0] == rows[1] > 0
    assert rows[2] == 0


def test_a_clean_world_raises_no_anomaly(clean_world):
    with duckdb.connect(str(clean_world.warehouse_path), read_only=True) as conn:
        flagged = conn.execute(
            "select anomaly_type, count(*) from marts.billing_anomalies group by anomaly_type order by anomaly_type"
        ).fetchall()
    assert flagged == []
