"""The dbt sources must declare exactly the landing contract's columns and types."""

import yaml

from orchestration.lib.contract import SOURCES
from orchestration.lib.settings import DBT_PROJECT_DIR


def _declared_tables() -> dict[str, list[dict]]:
    sources = yaml.safe_load((DBT_PROJECT_DIR / "models/staging/_raw__sources.yml").read_text())
    (raw,) = [s for s in sources["sources"] if s["name"] == "raw"]
    return {table["name"]: table["columns"] for table in raw["tables"]}


def test_every_contract_source_is_a_dbt_source_and_nothing_else():
    assert set(_declared_tables()) == set(SOURCES)


def test_dbt_source_columns_and_types_follow_the_contract_in_order():
    for name, columns in _declared_tables().items():
        declared = [(c["name"], c["data_type"]) for c in columns]
        expected = [(c.name, c.raw_sql_type.lower()) for c in SOURCES[name].columns]
        assert declared == expected, name


def test_required_contract_columns_are_tested_not_null_in_dbt():
    for name, columns in _declared_tables().items():
        tested = {c["name"] for c in columns if "not_null" in (c.get("data_tests") or [])}
        assert tested == set(SOURCES[name].required_columns), name


def test_the_ticket_subcategories_dbt_pivots_on_are_the_contracts():
    from orchestration.lib.contract import TICKET_SUBCATEGORIES

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert tuple(project["vars"]["billing_ticket_subcategories"]) == TICKET_SUBCATEGORIES


def test_the_zero_decimal_currencies_dbt_rounds_with_are_the_contracts():
    from orchestration.lib.contract import ZERO_DECIMAL_CURRENCIES

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert tuple(project["vars"]["zero_decimal_currencies"]) == ZERO_DECIMAL_CURRENCIES
