"""The Dagster UI as a user starts it: the webserver on loopback, asked over GraphQL
whether every asset, group and check of the code location is there."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from orchestration.lib.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

STARTUP_SECONDS = 180
QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    description
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, query: str) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "BILLING_LANDING_DIR": str(root / "landing"),
        "BILLING_WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
        "BILLING_OUTPUT_DIR": str(root / "output"),
    }
    log = (root / "webserver.log").open("w")
    process = subprocess.Popen(
        [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", "orchestration.definitions"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"dagster-webserver exited with {process.returncode}: {(root / 'webserver.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"dagster-webserver not up after {STARTUP_SECONDS}s: {(root / 'webserver.log').read_text()}"
                    )
                time.sleep(1)
        yield f"{base}/graphql"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def nodes(webserver) -> dict[str, dict]:
    # The code location loads in the background: ask until its assets are there.
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        answer = _post(webserver, QUERY)
        found = answer.get("data", {}).get("assetNodes") or []
        if found or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert found, answer
    return {"/".join(node["assetKey"]["path"]): node for node in found}


def test_every_asset_and_check_of_the_code_location_is_in_the_ui(nodes):
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    expected_assets = {key.to_user_string() for key in graph.get_all_asset_keys()}
    expected_checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    shown_checks = {
        (asset, check["name"]) for asset, node in nodes.items() for check in node["assetChecksOrError"]["checks"]
    }
    assert set(nodes) == expected_assets
    assert shown_checks == expected_checks


def test_the_graph_runs_from_landing_to_dashboard_in_named_groups(nodes):
    groups = {key: node["groupName"] for key, node in nodes.items()}
    assert groups["raw/invoices"] == "ingest"
    assert groups["staging/stg_billing__invoices"] == "staging"
    assert groups["marts/kpi_churn"] == "marts"
    assert groups["marts/billing_anomalies"] == "quality"
    assert groups["publish/kpi_dashboard"] == "publish"
    assert groups["publish/at_risk_exports"] == "publish"
    assert all(node["description"] for node in nodes.values()), "every asset says what it is"


def test_the_blocking_checks_are_shown_as_blocking(nodes):
    def checks(asset: str) -> dict[str, bool]:
        return {check["name"]: check["blocking"] for check in nodes[asset]["assetChecksOrError"]["checks"]}

    assert checks("raw/invoice_lines")["batch_expectations"] is True
    assert checks("raw/invoice_lines")["conservation"] is True
    assert checks("raw/invoice_lines")["all_files_readable"] is False
    anomalies = checks("marts/billing_anomalies")
    assert anomalies["block_anomalies_within_revenue_share"] is True
    assert anomalies["mart_expectations"] is True
