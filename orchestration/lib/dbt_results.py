"""dbt test results (run_results.json + manifest) as rows of quality.check_runs.

Dagster shows each dbt test as an asset check, but only in its own event log;
this turns one `dbt build`'s results into CheckRun rows (layer `dbt_test`) so
the quality history and report hold dbt tests beside the GX suites.

Status mapping, so that `passed` means "the data met the test" in every layer
and `severity` says what the outcome did to the run:
- pass    -> passed, severity from the test's config (error -> block, warn -> warn)
- warn    -> failed, warn: the failures stayed under the test's error threshold
- fail    -> failed, block: dbt failed the build
- error   -> failed, block: the test itself could not run (bad SQL, missing relation)
- skipped -> not recorded: the test never ran (an upstream node failed, and
             that node's error is what the run reports)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster_dbt import DagsterDbtTranslator

from orchestration.lib.check_runs import CheckRun

DBT_TEST_LAYER = "dbt_test"
TEST_PREFIXES = ("test.", "unit_test.")
_FAILED_STATUSES = {"warn": "warn", "fail": "block", "error": "block"}
_CONFIG_SEVERITY = {"error": "block", "warn": "warn"}


@dataclass
class DbtTestResults:
    """What one invocation's run_results.json says about its tests."""

    runs: list[CheckRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unique ids of tests that did not run


def dbt_test_check_runs(
    run_results: Mapping[str, Any],
    manifest: Mapping[str, Any],
    translator: DagsterDbtTranslator | None = None,
) -> DbtTestResults:
    """One CheckRun per data test and unit test in `run_results`; models and seeds are ignored.

    `translator` names the tested node's asset the way the dbt assets do, so a row's
    `asset` is the key the Dagster check sits on (e.g. marts/kpi_churn, raw/customers).
    """
    translator = translator or DagsterDbtTranslator()
    results = DbtTestResults()
    for result in run_results.get("results", []):
        unique_id = result["unique_id"]
        if not unique_id.startswith(TEST_PREFIXES):
            continue
        status = result["status"]
        if status == "skipped":
            results.skipped.append(unique_id)
            continue
        test = _test_node(manifest, unique_id)
        results.runs.append(
            CheckRun(
                layer=DBT_TEST_LAYER,
                asset=tested_asset(manifest, test, translator),
                check_name=test["name"],
                passed=status == "pass",
                severity=_severity(test, status),
                target=_target(test),
                failing_rows=_failures(result),
                message=result.get("message") or _default_message(status),
                duration_ms=_duration_ms(result),
            )
        )
    return results


def _test_node(manifest: Mapping[str, Any], unique_id: str) -> Mapping[str, Any]:
    collection = "unit_tests" if unique_id.startswith("unit_test.") else "nodes"
    try:
        return manifest[collection][unique_id]
    except KeyError:
        raise KeyError(
            f"dbt test {unique_id} is in run_results.json but not in the manifest's {collection}: "
            "the manifest is older than the build (run `dbt parse`)"
        ) from None


def tested_asset(manifest: Mapping[str, Any], test: Mapping[str, Any], translator: DagsterDbtTranslator) -> str:
    """The asset a test checks, found as dagster-dbt finds it: the generic test's
    attached node, a singular test's one dependency, its `meta.dagster.ref`; a
    singular test on several nodes with no ref names all of them."""
    depends_on = list(test.get("depends_on", {}).get("nodes", []))
    attached = test.get("attached_node") or (depends_on[0] if len(depends_on) == 1 else None)
    ref = ((test.get("config", {}).get("meta") or test.get("meta") or {}).get("dagster") or {}).get("ref")
    if ref:
        attached = next(
            (uid for uid, node in manifest["nodes"].items() if node.get("name") == ref["name"]),
            attached,
        )
    unique_ids = [attached] if attached else sorted(depends_on)
    return ", ".join(_asset_name(manifest, uid, translator) for uid in unique_ids) or "(no node)"


def _asset_name(manifest: Mapping[str, Any], unique_id: str, translator: DagsterDbtTranslator) -> str:
    props = manifest["sources"][unique_id] if unique_id.startswith("source.") else manifest["nodes"][unique_id]
    return translator.get_asset_key(props).to_user_string()


def _severity(test: Mapping[str, Any], status: str) -> str:
    if status in _FAILED_STATUSES:
        return _FAILED_STATUSES[status]
    # Unit tests have no severity: a failing one fails the build.
    configured = str(test.get("config", {}).get("severity") or "error").lower()
    return _CONFIG_SEVERITY.get(configured, "block")


def _target(test: Mapping[str, Any]) -> str | None:
    if test.get("resource_type") == "unit_test":
        return "unit test (fixed input rows)"
    column = test.get("column_name")
    return f"column {column}" if column else None


def _failures(result: Mapping[str, Any]) -> int | None:
    failures = result.get("failures")
    return int(failures) if failures is not None else None


def _default_message(status: str) -> str | None:
    return None if status == "pass" else f"dbt reported status {status!r} with no message"


def _duration_ms(result: Mapping[str, Any]) -> float | None:
    seconds = result.get("execution_time")
    return round(float(seconds) * 1000.0, 3) if seconds is not None else None
