"""docs/querying_marts.md cannot drift from the warehouse: every SQL example runs on the
KPI world and returns rows, every Python example runs, and every table of the `marts`
schema is in the catalogue with an example query."""

from __future__ import annotations

import re

import duckdb
import pytest

from orchestration.lib.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

GUIDE = PROJECT_ROOT / "docs" / "querying_marts.md"
# Built by dbt in the marts schema, but a check rather than something to query (the guide says so).
NOT_FOR_ANALYSTS = {"sbg_parameters_checked"}


def code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def catalogue_marts(markdown: str) -> set[str]:
    """The marts named in the first column of the catalogue table."""
    return set(re.findall(r"^\| `marts\.(\w+)` \|", markdown, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def warehouse(kpi_world):
    assert kpi_world["ok"], "the KPI world's pipeline run failed: see the other integration tests"
    return kpi_world["settings"].warehouse_path


def test_the_guide_has_sql_and_python_examples(guide):
    assert len(code_blocks(guide, "sql")) >= 15
    assert len(code_blocks(guide, "python")) >= 1


def test_every_sql_example_runs_read_only_on_the_marts_and_returns_rows(guide, warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for sql in code_blocks(guide, "sql"):
            # examples read the interface only, never the pipeline's internals
            assert not re.search(r"\b(raw|staging|intermediate)\.", sql), sql
            assert "marts." in sql, sql
            rows = conn.sql(sql).fetchall()
            assert rows, f"no rows on the KPI world:\n{sql}"


def test_every_python_example_runs_against_the_configured_warehouse(guide, warehouse, monkeypatch, capsys):
    monkeypatch.setenv("BILLING_WAREHOUSE_PATH", str(warehouse))
    for source in code_blocks(guide, "python"):
        exec(compile(source, str(GUIDE), "exec"), {})
        assert capsys.readouterr().out.strip(), source


def test_every_mart_in_the_warehouse_is_in_the_catalogue_with_an_example_query(guide, warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        tables = {
            name
            for (name,) in conn.sql(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
    catalogued = catalogue_marts(guide)
    assert catalogued == tables - NOT_FOR_ANALYSTS
    assert all(f"marts.{name}" in guide for name in NOT_FOR_ANALYSTS)
    examples = "\n".join(code_blocks(guide, "sql"))
    assert {name for name in catalogued if not re.search(rf"\bmarts\.{name}\b", examples)} == set()
