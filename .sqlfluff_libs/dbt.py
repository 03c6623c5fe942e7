"""Stand-ins for dbt's cross-database macros, so SQLFluff's jinja templater can
render models that call `dbt.<macro>(...)` (sqlfluff-templater-dbt does not
support dbt 1.11). They only need to produce parseable SQL."""


def date_trunc(datepart, date):
    return f"date_trunc('{datepart}', {date})"


def dateadd(datepart, interval, from_date_or_timestamp):
    return f"({from_date_or_timestamp} + interval ({interval}) {datepart})"


def datediff(first_date, second_date, datepart):
    return f"date_diff('{datepart}', {first_date}, {second_date})"


def last_day(date, datepart):
    return f"last_day({date})"


def type_string():
    return "varchar"


def type_int():
    return "integer"


def type_numeric():
    return "numeric(28, 6)"


def type_timestamp():
    return "timestamp"


def cast(field, type):  # noqa: A002 - mirrors dbt's signature
    return f"cast({field} as {type})"


def concat(fields):
    return " || ".join(fields)


def safe_cast(field, type):  # noqa: A002
    return f"try_cast({field} as {type})"


def hash(field):  # noqa: A001 - mirrors dbt's name
    return f"md5(cast({field} as varchar))"
