"""Every environment variable the project reads is documented in docs/configuration.md, with the code's default."""

from __future__ import annotations

import re
import subprocess

from orchestration.lib.policy import POLICY_PATH_VARIABLE
from orchestration.lib.settings import DEFAULT_DUCKDB_MEMORY_LIMIT, ENVIRONMENT, POLICY_PATH, PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "configuration.md"
SOURCE_SUFFIXES = (".py", ".sql", ".yml", ".yaml", ".ipynb", ".sh", ".toml", ".cfg")
# Where a variable is read: Python's os.environ / os.getenv with a literal name, a
# BILLING_* name in quotes (the settings table, *_VARIABLE constants), dbt's env_var(),
# and a NAME= prefix on a command line in the Makefile (DAGSTER_HOME=... dagster dev).
READ_PATTERNS = (
    re.compile(r"""os\.(?:environ\.get|environ\[|getenv)\(?\s*\\?["']([A-Z][A-Z0-9_]+)\\?["']"""),
    re.compile(r"""\\?["'](BILLING_[A-Z0-9_]+)\\?["']"""),
    re.compile(r"""env_var\(\s*["']([A-Z][A-Z0-9_]+)["']"""),
)
# In the Makefile: `NAME ?= default` (the environment may set it), `$(NAME)` used but
# never assigned (BENCH_ARGS), and a NAME=value prefix on a command (DAGSTER_HOME=... dagster dev).
MAKE_ASSIGNED = re.compile(r"^([A-Z][A-Z0-9_]+)\s*:?=", flags=re.MULTILINE)
MAKE_DEFAULTED = re.compile(r"^([A-Z][A-Z0-9_]+)\s*\?=", flags=re.MULTILINE)
MAKE_USED = re.compile(r"\$\(([A-Z][A-Z0-9_]+)\)")
# Variables of the operating system or of make itself, not the project's configuration.
NOT_CONFIGURATION = {"PATH", "CURDIR", "MAKE", "SHELL"}


def makefile_variables(text: str) -> set[str]:
    commands = re.findall(r"^\t.*$", text, flags=re.MULTILINE)
    prefixes = {name for line in commands for name in re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]+)=", line)}
    unassigned = set(MAKE_USED.findall(text)) - set(MAKE_ASSIGNED.findall(text))
    return (set(MAKE_DEFAULTED.findall(text)) | unassigned | prefixes) - NOT_CONFIGURATION


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.splitlines() if not name.startswith(("tests/", "docs/"))]


def variables_read() -> dict[str, set[str]]:
    """variable -> files that read it, found by scanning the tracked source."""
    found: dict[str, set[str]] = {}
    for name in tracked_files():
        path = PROJECT_ROOT / name
        if not path.is_file():
            continue
        if name.endswith(SOURCE_SUFFIXES):
            text = path.read_text(encoding="utf-8", errors="replace")
            names = {m for pattern in READ_PATTERNS for m in pattern.findall(text)}
        elif path.name == "Makefile":
            names = makefile_variables(path.read_text())
        else:
            continue
        for variable in names:
            found.setdefault(variable, set()).add(name)
    return found


def documented() -> dict[str, str]:
    """variable -> default cell of the table in docs/configuration.md."""
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \|", DOC.read_text(), flags=re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_the_scan_finds_the_variables_read_in_python_dbt_and_the_makefile():
    found = variables_read()
    assert "orchestration/lib/settings.py" in found["BILLING_LANDING_DIR"]
    assert "dbt_project/profiles.yml" in found["BILLING_WAREHOUSE_PATH"]
    assert "dbt_project/macros/incremental.sql" in found["BILLING_RAW_BATCH_WATERMARK"]
    assert "Makefile" in found["DAGSTER_HOME"]
    assert "Makefile" in found["BENCH_ARGS"]


def test_every_variable_read_is_documented_and_every_documented_one_is_read():
    read, listed = set(variables_read()), set(documented())
    assert sorted(read - listed) == [], "read in the code but missing from docs/configuration.md"
    assert sorted(listed - read) == [], "documented in docs/configuration.md but read nowhere"


def test_the_documented_defaults_are_the_codes():
    defaults = documented()
    for name, (default, _meaning) in ENVIRONMENT.items():
        assert defaults[name] == f"`{default}`", name
    assert defaults["BILLING_DUCKDB_MEMORY_LIMIT"] == f"`{DEFAULT_DUCKDB_MEMORY_LIMIT}`"
    assert defaults[POLICY_PATH_VARIABLE] == f"`{POLICY_PATH.relative_to(PROJECT_ROOT).as_posix()}`"


def test_env_example_lists_documented_variables_with_the_documented_defaults():
    defaults = documented()
    lines = (PROJECT_ROOT / ".env.example").read_text().splitlines()
    pairs = [line.lstrip("# ").split("=", 1) for line in lines if re.match(r"^#? ?[A-Z][A-Z0-9_]+=", line)]
    assert pairs, ".env.example lists no variable"
    for name, value in pairs:
        assert defaults.get(name) == f"`{value}`", name
