"""No credential is committed: every git-tracked text file is scanned for secret-shaped text.

Allowlist: a deliberate match (a documented placeholder, a fixture) goes in
ALLOWED as (file, matched text) with the reason in a comment; the test fails on
an entry that no longer matches, so the list cannot rot. The sample secrets
below are assembled from pieces so that this file does not match itself.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from orchestration.lib.settings import PROJECT_ROOT

# Larger files are generated data or lock files, not hand-written configuration.
MAX_BYTES = 2_000_000

PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{30,}"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    # password= / secret: / token = ... with a literal value: quoted, or bare in a config line.
    "credential assignment": re.compile(
        r"""(?ix)\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth[_-]?token)\w*
            \s*[:=]\s*
            (?:"[^"\s{}$<]{4,}"|'[^'\s{}$<]{4,}'|(?<![(\w])[^\s"'{}$<(),;]{8,}$)""",
        re.MULTILINE,
    ),
    "URL with user:password@": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"]+@[^\s/'\"]+"),
}

# (file, matched text): why it is not a credential.
ALLOWED: set[tuple[str, str]] = set()


def tracked_text_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return listed.stdout.splitlines()


def findings_in(text: str) -> list[tuple[str, str]]:
    return [(kind, match.group(0)) for kind, pattern in PATTERNS.items() for match in pattern.finditer(text)]


def repository_findings() -> list[tuple[str, str, str]]:
    found = []
    for name in tracked_text_files():
        path = PROJECT_ROOT / name
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary (images, Parquet fixtures)
            continue
        for kind, matched in findings_in(data.decode("utf-8", errors="replace")):
            found.append((name, kind, matched))
    return found


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("-----BEGIN " + "RSA PRIVATE KEY-----\nMIIE...", "private key"),
        ("aws_access_key_id = " + "AKIA" + "ABCDEFGHIJKLMNOP", "AWS access key id"),
        ("GITHUB=" + "ghp_" + "a" * 36, "GitHub token"),
        ('password = "' + "hunter2hunter" + '"', "credential assignment"),
        ("api_key: " + "sk-live-1234567890", "credential assignment"),
        ("SECRET=" + "s3cr3tvalue123", "credential assignment"),
        ("postgres://analyst:" + "pa55word" + "@db.internal:5432/billing", "URL with user:password@"),
    ],
)
def test_the_scan_recognises_each_kind_of_credential(text, kind):
    assert kind in {found for found, _ in findings_in(text)}


@pytest.mark.parametrize(
    "text",
    [
        "password = os.environ['WAREHOUSE_PASSWORD']",  # read from the environment
        "token=token,",  # a variable passed on
        "secret: {{ env_var('BILLING_SECRET') }}",  # a dbt reference
        "password=<your password>",  # a placeholder
        "see https://docs.getdbt.com/reference/dbt-jinja-functions/env_var",
        "billing+cus_1@example.test",
    ],
)
def test_references_and_placeholders_are_not_credentials(text):
    assert findings_in(text) == []


def test_no_tracked_file_holds_a_credential():
    found = repository_findings()
    unexpected = [(name, kind, matched) for name, kind, matched in found if (name, matched) not in ALLOWED]
    assert unexpected == []
    stale = ALLOWED - {(name, matched) for name, _kind, matched in found}
    assert stale == set(), "ALLOWED entries that no longer match anything: remove them"
