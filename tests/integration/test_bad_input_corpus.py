"""The bad-input corpus through the Dagster ingest assets: every broken delivery gets its stated
outcome, the rest of the world loads, and every delivered row is loaded, quarantined or held in a
rejected or unreadable file that is retried.

One run for all cases (tests/corpus/bad_deliveries.py keeps them independent); each case is its
own test, so a failure names the case.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.defs.ingest.assets import ingest_assets
from orchestration.defs.resources import WarehouseResource
from orchestration.lib.contract import SOURCE_NAMES
from orchestration.lib.settings import PROJECT_ROOT
from tests.corpus.bad_deliveries import (
    LOADED,
    REJECTED,
    UNREADABLE,
    WORLD_FILE,
    Case,
    build_cases,
    outcome_table,
    world_rows,
    write_corpus,
)

pytestmark = pytest.mark.integration

CASES = build_cases()


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory) -> dict:
    """The valid world and every case in one landing folder, ingested once by the Dagster assets."""
    root = tmp_path_factory.mktemp("bad_input_corpus")
    landing, warehouse = root / "landing", root / "warehouse.duckdb"
    write_corpus(landing, CASES)
    resource = WarehouseResource(warehouse_path=str(warehouse), landing_dir=str(landing), output_dir=str(root))
    result = dg.materialize(
        ingest_assets,
        resources={"warehouse": resource},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    return {"result": result, "warehouse": warehouse}


def query(warehouse: Path, sql: str, parameters: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql, parameters or []).fetchall()


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def sources_with(cases: list[Case], status: str) -> set[str]:
    return {f.source for case in cases for f in case.files if f.status == status}


def test_every_source_is_ingested_and_the_valid_world_loads_whole_beside_the_broken_files(corpus_run):
    result, warehouse = corpus_run["result"], corpus_run["warehouse"]

    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {f"raw/{s}" for s in SOURCE_NAMES}
    world = query(
        warehouse,
        "select source, status, rows_in_file, rows_loaded, rows_quarantined from raw._load_manifest "
        "where batch_file like ? order by source",
        [f"%/{WORLD_FILE}"],
    )
    assert world == [(s, LOADED, world_rows(s), world_rows(s), 0) for s in sorted(SOURCE_NAMES)]
    checks = check_evaluations(result)
    # Only the sources holding a rejected case fail their blocking check; only those with an
    # unreadable file warn; conservation holds everywhere.
    assert {a for (a, name), e in checks.items() if name == "batch_expectations" and not e.passed} == {
        f"raw/{s}" for s in sources_with(CASES, REJECTED)
    }
    assert {a for (a, name), e in checks.items() if name == "all_files_readable" and not e.passed} == {
        f"raw/{s}" for s in sources_with(CASES, UNREADABLE)
    }
    assert all(e.passed for (_a, name), e in checks.items() if name == "conservation")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_broken_delivery_gets_its_stated_outcome_and_every_row_is_accounted_for(corpus_run, case: Case):
    result, warehouse = corpus_run["result"], corpus_run["warehouse"]
    checks = check_evaluations(result)
    for delivery in case.files:
        [(status, rows_in_file, rows_loaded, rows_quarantined, error)] = query(
            warehouse,
            "select status, rows_in_file, rows_loaded, rows_quarantined, error from raw._load_manifest "
            "where batch_file = ?",
            [delivery.path],
        )
        in_raw = query(warehouse, f"select count(*) from raw.{delivery.source} where _batch_file = ?", [delivery.path])
        quarantined = query(
            warehouse,
            "select row_number, column_name, reason from raw._quarantine where batch_file = ? order by row_number",
            [delivery.path],
        )
        assert status == delivery.status, (delivery.path, error)
        assert quarantined == [(q.row, q.column, q.reason) for q in delivery.quarantined], delivery.path
        assert (rows_loaded, rows_quarantined) == (delivery.loaded, len(delivery.quarantined)), delivery.path
        assert in_raw == [(delivery.loaded,)], delivery.path
        if delivery.status == LOADED:
            # Conservation against what the case wrote, not what the reader counted.
            assert rows_in_file == delivery.delivered == delivery.loaded + len(quarantined), delivery.path
            assert error is None
        else:
            # Nothing of the file is kept; the file stays in landing and is retried next run.
            assert (rows_loaded, rows_quarantined, quarantined) == (0, 0, []), delivery.path
            assert rows_in_file == (delivery.delivered if delivery.status == REJECTED else None), delivery.path
            position = 0
            for part in delivery.error_parts:
                found = error.find(part, position)
                assert found >= 0, f"{delivery.path}: {part!r} not in {error!r}"
                position = found + len(part)
        asset = f"raw/{delivery.source}"
        if delivery.status == UNREADABLE:
            unreadable = checks[(asset, "all_files_readable")].metadata["unreadable"].value
            assert {"file": delivery.path, "error": error} in unreadable
        if delivery.status == REJECTED:
            assert checks[(asset, "batch_expectations")].metadata["rejected_files"].value == [delivery.path]
    for sql, expected in case.raw_checks:
        assert query(warehouse, sql) == expected, sql


def test_the_ingest_asset_shows_quarantined_rows_with_file_row_column_and_reason(corpus_run):
    [payments] = [
        e.materialization
        for e in corpus_run["result"].get_asset_materialization_events()
        if e.asset_key.to_user_string() == "raw/payments"
    ]
    shown = payments.metadata["quarantined_rows"].value
    expected = [
        {"file": f.path, "row": q.row, "column": q.column, "reason": q.reason}
        for case in CASES
        for f in case.files
        if f.source == "payments" and f.status == LOADED
        for q in f.quarantined
    ]
    # Loaded in path order, so the examples follow the files' order, then their rows.
    assert shown == sorted(expected, key=lambda e: (e["file"], e["row"]))


def test_the_docs_table_of_broken_deliveries_is_the_corpus():
    docs = (PROJECT_ROOT / "docs" / "data_quality.md").read_text()
    assert outcome_table(CASES) in docs
