"""Configuration comes from the environment, with defaults under ./data/."""

from pathlib import Path

from orchestration.lib.settings import PROJECT_ROOT, Settings


def test_defaults_live_under_the_project_data_folder(monkeypatch):
    for name in ("BILLING_LANDING_DIR", "BILLING_WAREHOUSE_PATH", "BILLING_OUTPUT_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert settings.landing_dir == PROJECT_ROOT / "data" / "landing"
    assert settings.warehouse_path == PROJECT_ROOT / "data" / "warehouse.duckdb"
    assert settings.output_dir == PROJECT_ROOT / "data" / "output"


def test_relative_overrides_resolve_against_the_project_and_absolute_ones_stay(monkeypatch, tmp_path):
    monkeypatch.setenv("BILLING_LANDING_DIR", "elsewhere/landing")
    monkeypatch.setenv("BILLING_WAREHOUSE_PATH", str(tmp_path / "w.duckdb"))
    settings = Settings.from_env()
    assert settings.landing_dir == PROJECT_ROOT / "elsewhere" / "landing"
    assert settings.warehouse_path == Path(tmp_path / "w.duckdb")


def test_the_dbt_profile_reads_the_same_variable_with_the_same_default():
    profile = (PROJECT_ROOT / "dbt_project" / "profiles.yml").read_text()
    # relative to dbt_project/, where dbt runs: the same file as the settings default
    assert "env_var('BILLING_WAREHOUSE_PATH', '../data/warehouse.duckdb')" in profile
