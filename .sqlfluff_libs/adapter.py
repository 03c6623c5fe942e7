"""Stand-in for dbt's `adapter.dispatch`, so SQLFluff's jinja templater can render models
and macros that call dispatched macros (dbt_project/macros/cross_db/, incremental.sql).

The linted dialect is DuckDB, so a dispatched macro renders as its `duckdb__` variant, else
its `default__` one, found among the macros SQLFluff loaded from dbt_project/macros."""

from jinja2 import pass_context


def dispatch(macro_name, macro_namespace=None):  # noqa: ARG001 - mirrors dbt's signature
    @pass_context
    def render(context, *args, **kwargs):
        for prefix in ("duckdb__", "default__"):
            macro = context.get(prefix + macro_name)
            if macro is not None:
                return macro(*args, **kwargs)
        raise LookupError(f"no duckdb__ or default__ variant of the dispatched macro {macro_name}")

    return render
