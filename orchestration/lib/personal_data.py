"""Personal data: which columns hold it, and how it is masked before it leaves the warehouse.

The warehouse (raw, staging, marts) keeps personal data as delivered: whoever
can open it is trusted with it. Everything else the pipeline writes (reports,
quality examples, Dagster metadata, logs, printed errors) is read by more
people and kept longer, so personal values are masked on the way out, here
and only here (docs/personal_data.md says what is masked where).

Two mechanisms, because personal data reaches a sink in two shapes:

- as a value of a known personal column (a quality example {"email": ...}):
  masked by column, whatever it looks like (`mask_value`, `mask_example`);
- inside a sentence (a quarantine reason, an error, a log line), where the
  column is unknown: email-shaped text is redacted (`redact_text`). Names and
  comments in the wrong column cannot be recognised by shape; that residual
  risk is documented, not hidden.

Masks keep the kind and the length and nothing else: no partial email
(`j***@e***.com` still narrows a person down) and no hash (an unsalted hash of
an email is reversed by hashing a list of candidates, and a salt would be a
secret to manage). An example already carries the file row number, which leads
anyone with warehouse access to the value itself.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from orchestration.lib.contract import SOURCES

EMAIL = "email"
NAME = "name"
FREE_TEXT = "text"

# The contract (shared/spec/landing.md) does not mark personal columns, so they
# are declared here, per table: `name` is a person's or company's name in
# customers but a product's in products. Why each one is personal:
# - customers.name / email: identify the account holder (often a person's name
#   or a personal address, even for a company account);
# - survey_responses.comment, subscription_events.reason: free text typed by or
#   about a customer; it can say anything, names and addresses included.
PERSONAL_COLUMNS: dict[str, dict[str, str]] = {
    "customers": {"name": NAME, "email": EMAIL},
    "survey_responses": {"comment": FREE_TEXT},
    "subscription_events": {"reason": FREE_TEXT},
    # the staging models that carry them on (under their staging names)
    "stg_billing__customers": {"customer_name": NAME, "email": EMAIL},
    "stg_surveys__responses": {"comment": FREE_TEXT},
    "stg_billing__subscription_events": {"reason": FREE_TEXT},
}

# Local part, @, a domain with at least one dot: what an address looks like in
# any text. Quotes and slashes are left out of the local part (RFC 5322 allows
# them, but in a message they delimit a value or a path); bounded quantifiers
# keep it fast on a 10 MB line.
EMAIL_PATTERN = re.compile(r"[A-Za-z0-9.!#$%&*+=?^_{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
REDACTED_EMAIL = "[redacted email]"


def personal_columns(table: str) -> dict[str, str]:
    """column -> kind for a table named bare (customers), by schema (raw.customers) or by
    asset (raw/customers); an unknown table has none."""
    bare = re.split(r"[./]", table)[-1].strip('"')
    return PERSONAL_COLUMNS.get(bare, {})


def mask_value(value: Any, kind: str) -> Any:
    """`[redacted <kind>, N chars]`; None stays None (a missing value is not personal)."""
    if value is None:
        return None
    return f"[redacted {kind}, {len(str(value))} chars]"


def redact_text(text: str) -> str:
    """The text with every email-shaped substring replaced by REDACTED_EMAIL."""
    return EMAIL_PATTERN.sub(REDACTED_EMAIL, text) if "@" in text else text


def mask_example(example: Any, table: str) -> Any:
    """A quality example (a value, or a {column: value} row) with personal columns masked
    and email-shaped text redacted everywhere else."""
    if isinstance(example, Mapping):
        personal = personal_columns(table)
        return {
            key: mask_value(value, personal[key]) if key in personal else mask_example(value, table)
            for key, value in example.items()
        }
    if isinstance(example, list | tuple):
        return [mask_example(item, table) for item in example]
    if isinstance(example, str):
        return redact_text(example)
    return example


def mask_examples(examples: list, table: str) -> list:
    return [mask_example(example, table) for example in examples]


def redact_optional(value: str | None) -> str | None:
    """For optional text fields (messages, errors): None stays None."""
    return None if value is None else redact_text(value)


# --- logs ---------------------------------------------------------------------------


class RedactEmails(logging.Filter):
    """Rewrites a record's message (and its formatted traceback) with emails redacted.

    As a filter it only sees the records of the logger or handler it is attached
    to; `install_log_redaction` runs the same rewrite on every record instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a bad format string: logging reports it itself
        return record
    redacted = redact_text(message)
    if redacted != message:
        record.msg, record.args = redacted, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = redact_text(text)
    elif record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    return record


_installed_factory: Any = None


def install_log_redaction() -> None:
    """Redact emails from every log record of this process, once (idempotent).

    A record factory, not a filter on a logger: Dagster builds a new logger and
    new handlers for every run (context.log, the console logger), so there is no
    fixed logger to attach a filter to, while every record, ours, Dagster's and
    dbt's events relayed by dagster-dbt, is created through the factory.
    """
    global _installed_factory
    current = logging.getLogRecordFactory()
    if current is _installed_factory:
        return
    previous = current

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(redacting_factory)
    _installed_factory = redacting_factory


class _RedactingStream:
    """A text stream that redacts emails from what is written to it, then passes it on."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_text(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self._stream, name)


def install_console_redaction() -> None:
    """Redact emails from everything this process prints (the CLI's messages and errors,
    Dagster's console log) and from every log record; idempotent. For entry points
    (orchestration/cli.py main), not for library code."""
    install_log_redaction()
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, _RedactingStream):
            setattr(sys, name, _RedactingStream(stream))


def missing_from_contract() -> list[str]:
    """Declared raw personal columns missing from the contract (a test keeps this empty)."""
    return [
        f"{table}.{column}"
        for table, columns in PERSONAL_COLUMNS.items()
        if table in SOURCES
        for column in columns
        if column not in SOURCES[table].column_names
    ]
