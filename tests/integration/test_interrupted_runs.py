"""A run killed at any point leaves the warehouse consistent, and the next run finishes the job.

One world, delivered with its last days held back (as in test_incremental_runs.py).
Warehouse "crashed" loads everything but those days in a clean run; then the
held-back files land and `billing-analytics run` is started in a child process
and killed with SIGKILL (orchestration/lib/failpoints.py; the whole process group,
dbt included, as in a crash) at one point after another, each run going further:

1. between reading a batch and writing it (ingest.before_write, 2nd batch),
2. inside a batch's write transaction, before its commit (ingest.before_commit, 2nd),
3. right after a batch's commit, before the next batch (ingest.after_commit, 2nd),
4. in the middle of the incremental dbt build (dbt.event, 120th event of about 300),
5. during publication, with one of the two published folders swapped in and the
   other one complete but not yet visible (publish.before_swap, 2nd).

After every kill: no half batch (raw and quarantine hold exactly what the manifest
says for every loaded batch, nothing of any other batch), no file loaded twice,
and the published dashboard and exports are each one complete set. Then a run
without a fault must succeed and leave raw, staging, intermediate and marts, the
dashboard's numbers and the exports equal to those of warehouse "clean", loaded in
one uninterrupted run from the whole landing folder.

The kills run one after another on one warehouse rather than each from a fresh
copy: each later kill starts from the state the earlier one left, which is what
a flaky machine does, and the test stays at about seven pipeline runs.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
from pathlib import Path

import duckdb
import pytest

from billing_world.deliver import DeliveryConfig, held_back_files, move_batch_files
from billing_world.generate import generate_world
from billing_world.simulate import WorldConfig
from orchestration.lib.contract import SOURCES
from orchestration.lib.settings import Settings
from tests.integration.cli_process import run_cli
from tests.integration.test_incremental_runs import EXCLUDED_COLUMNS
from tests.integration.warehouse_comparison import CONSISTENT, RAW_EXCLUDED, load_consistency, table_differences

pytestmark = pytest.mark.integration

WORLD = WorldConfig(customers=120, months=6, start=dt.date(2024, 1, 1), seed=17, anomaly_rate=0.0)
DELIVERY = DeliveryConfig(batches_per_source=2, bad_row_rate=0.01, seed=17, held_back_days=4)
KILLS = (
    "ingest.before_write:2",
    "ingest.before_commit:2",
    "ingest.after_commit:2",
    "dbt.event:120",
    "publish.before_swap:2",
)


def _published(output_dir: Path) -> dict[str, bytes]:
    """Every published file (dashboard and exports), by path relative to the output folder."""
    files = {}
    for folder in (output_dir / "dashboard", output_dir / "exports" / "at_risk"):
        for path in sorted(folder.iterdir()):
            files[path.relative_to(output_dir).as_posix()] = path.read_bytes()
    return files


def _one_complete_set(output_dir: Path) -> list[str]:
    """Problems with the published folders: a manifest file missing, or a page beside another run's data."""
    problems = []
    exports = output_dir / "exports" / "at_risk"
    manifest = json.loads((exports / "manifest.json").read_text())
    listed = {entry["file"] for entry in manifest["files"]} | {"manifest.json"}
    if {path.name for path in exports.iterdir()} != listed:
        problems.append(f"exports: {sorted(path.name for path in exports.iterdir())} != manifest {sorted(listed)}")
    dashboard = output_dir / "dashboard"
    data = json.loads((dashboard / "dashboard_data.json").read_text())
    if data["generated_at"] not in (dashboard / "index.html").read_text():
        problems.append("dashboard: index.html was not rendered from dashboard_data.json")
    return problems


def _loaded_batches(warehouse: Path) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select count(*) from raw._load_manifest where status = 'loaded'").fetchall()[0][0]


def _recorded_builds(warehouse: Path) -> list[tuple[str, str]]:
    """(run id, dbt op) of every build recorded in meta.dbt_builds."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select distinct run_id, dbt_op from meta.dbt_builds order by all").fetchall()


@pytest.fixture(scope="module")
def crashes(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupted")
    clean = Settings(root / "clean" / "landing", root / "clean" / "warehouse.duckdb", root / "clean" / "output")
    crashed = Settings(root / "crashed" / "landing", root / "crashed" / "warehouse.duckdb", root / "crashed" / "output")
    generate_world(clean.landing_dir, WORLD, DELIVERY)
    shutil.copytree(clean.landing_dir, crashed.landing_dir)  # copy2: same bytes, sizes and mtimes
    held_back = held_back_files(crashed.landing_dir)
    move_batch_files(held_back, crashed.landing_dir, root / "held_back")

    base = run_cli(crashed)
    base_builds = _recorded_builds(crashed.warehouse_path)
    base_published = _published(crashed.output_dir)
    move_batch_files(held_back, root / "held_back", crashed.landing_dir)
    kills = []
    for failpoint in KILLS:
        before = _published(crashed.output_dir)
        killed = run_cli(crashed, failpoint=failpoint)
        kills.append(
            {
                "failpoint": failpoint,
                "returncode": killed.returncode,
                "reached": f"failpoint {failpoint} reached" in killed.stdout,
                "consistency": load_consistency(crashed.warehouse_path),
                "loaded_batches": _loaded_batches(crashed.warehouse_path),
                "recorded_builds": _recorded_builds(crashed.warehouse_path),
                # dbt's log line for each model it replaced before the kill
                "models_built": (killed.stdout + killed.stderr).count(" OK created "),
                "published_before": before,
                "published_after": _published(crashed.output_dir),
                "complete_sets": _one_complete_set(crashed.output_dir),
            }
        )
    resumed = run_cli(crashed)
    uninterrupted = run_cli(clean)
    return {
        "clean": clean,
        "crashed": crashed,
        "held_back": held_back,
        "base": base,
        "base_published": base_published,
        "base_builds": base_builds,
        "kills": kills,
        "resumed": resumed,
        "uninterrupted": uninterrupted,
    }


def test_the_runs_without_a_fault_succeed(crashes):
    assert crashes["base"].returncode == 0, crashes["base"].stderr[-3000:]
    assert crashes["resumed"].returncode == 0, crashes["resumed"].stderr[-3000:]
    assert crashes["uninterrupted"].returncode == 0, crashes["uninterrupted"].stderr[-3000:]
    assert len(crashes["held_back"]) >= 4, "enough new batches for three ingest kills to each leave work behind"


@pytest.mark.parametrize("index", range(len(KILLS)), ids=KILLS)
def test_each_run_is_killed_at_its_point_and_leaves_the_warehouse_consistent(crashes, index):
    kill = crashes["kills"][index]
    assert kill["returncode"] == -signal.SIGKILL and kill["reached"]
    assert kill["consistency"] == CONSISTENT
    assert kill["complete_sets"] == []


def test_each_ingest_kill_keeps_exactly_the_batches_committed_before_it(crashes):
    """Base batches, then +1 (the 2nd batch killed before its transaction), +1 (the 2nd
    rolled back at the kill), +2 (the 2nd committed just before the kill)."""
    base = _loaded_batches_of_base(crashes)
    loaded = [kill["loaded_batches"] for kill in crashes["kills"][:3]]
    assert loaded == [base + 1, base + 2, base + 4]


def _loaded_batches_of_base(crashes) -> int:
    with duckdb.connect(str(crashes["clean"].warehouse_path), read_only=True) as conn:
        everything = conn.execute("select count(*) from raw._load_manifest where status = 'loaded'").fetchall()[0][0]
        held_back = conn.execute(
            "select count(*) from raw._load_manifest where status = 'loaded' and batch_file in (select unnest(?))",
            [crashes["held_back"]],
        ).fetchall()[0][0]
    return everything - held_back


def test_the_dbt_kill_hits_a_build_half_done_and_no_build_is_recorded_until_one_finishes(crashes):
    """Killed mid-build, dbt has replaced some models (incremental staging among them) but the
    build is not recorded: the next run plans from the base run's build again."""
    base_builds = crashes["base_builds"]
    assert len(base_builds) == 2, "the base run: one build per dbt op"
    ingest_kills, dbt_kill, publish_kill = crashes["kills"][:3], crashes["kills"][3], crashes["kills"][4]
    assert all(kill["recorded_builds"] == base_builds for kill in ingest_kills)
    assert dbt_kill["models_built"] > 0
    assert dbt_kill["recorded_builds"] == base_builds
    # killed while publishing: both dbt ops had finished and were recorded
    assert len(publish_kill["recorded_builds"]) == 4


def test_publication_is_untouched_until_the_run_publishes(crashes):
    """Killed before publishing, a run leaves the base run's files byte for byte."""
    for kill in crashes["kills"][:4]:
        assert kill["published_after"] == crashes["base_published"], kill["failpoint"]


def test_a_kill_during_publication_leaves_the_one_folder_new_and_the_other_old(crashes):
    kill = crashes["kills"][4]
    changed = {
        name.split("/")[0] + ("/at_risk" if name.startswith("exports") else "")
        for name in set(kill["published_after"]) | set(kill["published_before"])
        if kill["published_after"].get(name) != kill["published_before"].get(name)
    }
    assert len(changed) == 1, changed


def test_the_next_run_leaves_every_table_as_one_uninterrupted_run(crashes, tmp_path):
    crashed, clean = crashes["crashed"].warehouse_path, crashes["clean"].warehouse_path
    raw_tables, raw_differences = table_differences(crashed, clean, ["raw"], RAW_EXCLUDED, tmp_path / "raw.duckdb")
    assert {table for _, table in raw_tables} >= {*SOURCES, "_quarantine", "_load_manifest"}
    assert raw_differences == {}
    schemas = ("staging", "intermediate", "marts")
    tables, differences = table_differences(crashed, clean, schemas, EXCLUDED_COLUMNS, tmp_path / "models.duckdb")
    assert {schema for schema, _ in tables} == set(schemas)
    assert differences == {}
    assert load_consistency(crashed) == CONSISTENT


def test_the_next_run_publishes_the_same_dashboard_numbers_and_exports(crashes):
    crashed, clean = _published(crashes["crashed"].output_dir), _published(crashes["clean"].output_dir)
    exports = sorted(name for name in clean if name.startswith("exports/") and not name.endswith("manifest.json"))
    assert exports and sorted(name for name in crashed if name in exports) == exports
    assert {name: crashed[name] for name in exports} == {name: clean[name] for name in exports}

    # the time of publication and the data-quality status (the checks of the latest run:
    # the resumed run loads no batch, so it runs no batch expectations) differ by design
    for name, volatile in (
        ("dashboard/dashboard_data.json", ("generated_at", "quality")),
        ("exports/at_risk/manifest.json", ("generated_at",)),
    ):
        left, right = json.loads(crashed[name]), json.loads(clean[name])
        for key in volatile:
            left.pop(key), right.pop(key)
        assert left == right, name
