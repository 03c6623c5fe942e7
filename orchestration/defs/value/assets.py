"""The sBG retention fit per segment: intermediate.int_sbg_survival -> marts.sbg_parameters,
and from each fit the residual lifetime by renewals survived -> marts.sbg_residual_lifetimes.

dbt reads the tables back as the sources `value.sbg_parameters` and
`value.sbg_residual_lifetimes` (asset keys marts/sbg_parameters and
marts/sbg_residual_lifetimes, dbt_project/models/marts/value/_value__sources.yml),
so models that need them (kpi_clv, customer_risk) sit downstream of this asset.
"""

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl

from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.lib import sbg
from orchestration.lib.policy import load_policy

SBG_PARAMETERS_KEY = dg.AssetKey(["marts", "sbg_parameters"])
RESIDUAL_LIFETIMES_KEY = dg.AssetKey(["marts", "sbg_residual_lifetimes"])
SURVIVAL_KEY = dg.AssetKey(["intermediate", "int_sbg_survival"])
# The KPI marts' segment dimensions, in the order of segment_dimensions() in
# dbt_project/macros/segments.sql (a unit test keeps the two in step).
SEGMENT_DIMENSIONS = ("company_size", "region", "tier", "billing_period", "acquisition_channel", "tenure_band")
BILLING_PERIODS = ("month", "quarter", "year")
PREVIEW_DIMENSIONS = ("all", "company_size")

TABLE = "marts.sbg_parameters"
TABLE_COLUMNS = {
    "segment_dimension": "varchar not null",
    "segment_value": "varchar not null",
    "billing_period": "varchar not null",
    "status": "varchar not null",
    "reason": "varchar",
    "alpha": "double",
    "beta": "double",
    "mean_churn_probability": "double",
    "discount_rate_per_period": "double",
    "discounted_expected_lifetime": "double",
    "log_likelihood": "double",
    "n_lives": "integer not null",
    "n_customers": "integer not null",
    "n_churned": "integer not null",
    "max_periods_survived": "integer",
    "fitted_at": "timestamp not null",
}
SURVIVAL_COLUMNS = ("customer_id", "billing_period", "periods_survived", "is_churned", *SEGMENT_DIMENSIONS)

RESIDUAL_TABLE = "marts.sbg_residual_lifetimes"
RESIDUAL_TABLE_COLUMNS = {
    "segment_dimension": "varchar not null",
    "segment_value": "varchar not null",
    "billing_period": "varchar not null",
    "renewals_survived": "integer not null",
    "alpha": "double not null",
    "beta": "double not null",
    "discount_rate_per_period": "double not null",
    "next_renewal_probability": "double not null",
    "discounted_expected_residual_lifetime": "double not null",
    "fitted_at": "timestamp not null",
}
# Renewals survived 0..MAX_RENEWALS per fitted segment: ten years of monthly renewals,
# far beyond the longest life of a few years of data. customer_risk values a customer
# past the cap at the cap (DERL rises with renewals, so that errs low).
MAX_RENEWALS = 120


def _segment_lives(lives: pl.DataFrame) -> pl.DataFrame:
    """Long format, as unpivot_segments() does in dbt: one row per life and dimension, plus
    `all`; a missing attribute is the value 'unknown'."""
    frames = [lives.with_columns(segment_dimension=pl.lit("all"), segment_value=pl.lit("all"))]
    for dimension in SEGMENT_DIMENSIONS:
        frames.append(
            lives.with_columns(
                segment_dimension=pl.lit(dimension),
                segment_value=pl.col(dimension).cast(pl.String).fill_null("unknown"),
            )
        )
    return pl.concat(frames).select(
        "segment_dimension", "segment_value", "billing_period", "customer_id", "periods_survived", "is_churned"
    )


def fit_segments(
    lives: pl.DataFrame,
    fitted_at: dt.datetime,
    annual_discount_rate: float,
    months_per_period: dict[str, int],
) -> pl.DataFrame:
    """One row per segment_dimension x segment_value x billing_period: the sBG fit on that
    segment's lives in that billing period's renewals (all acquisition cohorts pooled).
    The discounted expected lifetime uses the per-period equivalent of the annual rate."""
    rows = []
    segmented = _segment_lives(lives)
    for (dimension, value, period), group in segmented.group_by(
        ["segment_dimension", "segment_value", "billing_period"]
    ):
        fit = sbg.fit_sbg(group["periods_survived"].to_numpy(), group["is_churned"].to_numpy())
        rate = sbg.period_discount_rate(annual_discount_rate, months_per_period[period])
        rows.append(
            {
                "segment_dimension": dimension,
                "segment_value": value,
                "billing_period": period,
                "status": fit.status,
                "reason": fit.reason,
                "alpha": fit.alpha,
                "beta": fit.beta,
                "mean_churn_probability": fit.mean_churn_probability,
                "discount_rate_per_period": rate,
                "discounted_expected_lifetime": (
                    sbg.discounted_expected_lifetime(fit.alpha, fit.beta, rate) if fit.status == sbg.FITTED else None
                ),
                "log_likelihood": fit.log_likelihood,
                "n_lives": fit.n,
                "n_customers": group["customer_id"].n_unique(),
                "n_churned": fit.n_churned,
                "max_periods_survived": int(np.max(group["periods_survived"].to_numpy())),
                "fitted_at": fitted_at,
            }
        )
    schema = {
        "segment_dimension": pl.String,
        "segment_value": pl.String,
        "billing_period": pl.String,
        "status": pl.String,
        "reason": pl.String,
        "alpha": pl.Float64,
        "beta": pl.Float64,
        "mean_churn_probability": pl.Float64,
        "discount_rate_per_period": pl.Float64,
        "discounted_expected_lifetime": pl.Float64,
        "log_likelihood": pl.Float64,
        "n_lives": pl.Int32,
        "n_customers": pl.Int32,
        "n_churned": pl.Int32,
        "max_periods_survived": pl.Int32,
        "fitted_at": pl.Datetime("us"),
    }
    dimension_order = {name: i for i, name in enumerate(("all", *SEGMENT_DIMENSIONS))}
    period_order = {name: i for i, name in enumerate(BILLING_PERIODS)}
    return pl.DataFrame(rows, schema=schema, orient="row").sort(
        pl.col("segment_dimension").replace_strict(dimension_order, default=len(dimension_order)),
        "segment_value",
        pl.col("billing_period").replace_strict(period_order, default=len(period_order)),
    )


def residual_lifetimes(parameters: pl.DataFrame, max_renewals: int = MAX_RENEWALS) -> pl.DataFrame:
    """One row per fitted segment of `parameters` and renewals survived 0..max_renewals: the
    discounted expected residual lifetime DERL(d | renewals) at the fit's per-period rate d,
    in payments, the next one (made with next_renewal_probability) undiscounted
    (sbg.discounted_expected_residual_lifetime)."""
    renewals = np.arange(max_renewals + 1)
    frames = []
    for row in parameters.filter(pl.col("status") == sbg.FITTED).iter_rows(named=True):
        alpha, beta, rate = row["alpha"], row["beta"], row["discount_rate_per_period"]
        frames.append(
            pl.DataFrame(
                {
                    "renewals_survived": renewals,
                    "next_renewal_probability": sbg.retention(renewals + 1, alpha, beta),
                    "discounted_expected_residual_lifetime": sbg.discounted_expected_residual_lifetime(
                        alpha, beta, renewals, rate
                    ),
                }
            ).with_columns(
                segment_dimension=pl.lit(row["segment_dimension"]),
                segment_value=pl.lit(row["segment_value"]),
                billing_period=pl.lit(row["billing_period"]),
                alpha=pl.lit(alpha),
                beta=pl.lit(beta),
                discount_rate_per_period=pl.lit(rate),
                fitted_at=pl.lit(row["fitted_at"]),
            )
        )
    schema = {
        "segment_dimension": pl.String,
        "segment_value": pl.String,
        "billing_period": pl.String,
        "renewals_survived": pl.Int32,
        "alpha": pl.Float64,
        "beta": pl.Float64,
        "discount_rate_per_period": pl.Float64,
        "next_renewal_probability": pl.Float64,
        "discounted_expected_residual_lifetime": pl.Float64,
        "fitted_at": pl.Datetime("us"),
    }
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames).select([pl.col(name).cast(kind) for name, kind in schema.items()])


def _replace_table(conn, table: str, columns: dict[str, str], frame: pl.DataFrame) -> None:
    """create or replace, then insert; the caller holds the transaction."""
    definition = ",\n    ".join(f"{name} {kind}" for name, kind in columns.items())
    view = table.replace(".", "__") + "_frame"
    conn.execute(f"create or replace table {table} (\n    {definition}\n)")
    conn.register(view, frame.select(list(columns)))
    conn.execute(f"insert into {table} by name select * from {view}")
    conn.unregister(view)


def write_parameters(conn, parameters: pl.DataFrame, residuals: pl.DataFrame | None = None) -> None:
    """Replace the tables in one transaction: readers see the old fit or the new one, and
    the residual lifetimes always belong to the parameters beside them."""
    conn.execute("begin transaction")
    try:
        conn.execute("create schema if not exists marts")
        _replace_table(conn, TABLE, TABLE_COLUMNS, parameters)
        if residuals is not None:
            _replace_table(conn, RESIDUAL_TABLE, RESIDUAL_TABLE_COLUMNS, residuals)
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise


def _preview(parameters: pl.DataFrame) -> str:
    shown = parameters.filter(pl.col("segment_dimension").is_in(PREVIEW_DIMENSIONS))
    lines = [
        "| dimension | value | period | status | alpha | beta | E[churn] | DEL | lives | churned |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def number(value, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    for row in shown.iter_rows(named=True):
        lines.append(
            f"| {row['segment_dimension']} | {row['segment_value']} | {row['billing_period']} | {row['status']} "
            f"| {number(row['alpha'], 3)} | {number(row['beta'], 3)} | {number(row['mean_churn_probability'], 4)} "
            f"| {number(row['discounted_expected_lifetime'], 2)} | {row['n_lives']} | {row['n_churned']} |"
        )
    return "\n".join(lines)


def _residual_preview(residuals: pl.DataFrame) -> str:
    shown = residuals.filter(
        (pl.col("segment_dimension") == "all") & pl.col("renewals_survived").is_in([0, 1, 2, 6, 12, 24])
    )
    lines = ["| period | renewals | r(next) | DERL |", "|---|---|---|---|"]
    for row in shown.iter_rows(named=True):
        lines.append(
            f"| {row['billing_period']} | {row['renewals_survived']} | {row['next_renewal_probability']:.4f} "
            f"| {row['discounted_expected_residual_lifetime']:.2f} |"
        )
    return "\n".join(lines)


_MARTS_SPEC = {
    "deps": [SURVIVAL_KEY],
    "group_name": "marts",
    "kinds": {"python", "duckdb"},
    "owners": ["team:analytics-engineering"],
    "tags": {"layer": "marts"},
}


# One op writes both tables in one transaction: the residual lifetimes are a function of the
# fit, and a reader must never see one table from a newer fit than the other.
def fit_with_policy(lives: pl.DataFrame, fitted_at: dt.datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The sBG fit and residual lifetimes under the billing policy's discount rate and period
    length: one place for the DuckDB asset and the Spark build (lib/spark_value.py)."""
    policy = load_policy()
    parameters = fit_segments(
        lives,
        fitted_at,
        annual_discount_rate=policy["reporting"]["annual_discount_rate"],
        months_per_period=policy["billing"]["months_per_period"],
    )
    return parameters, residual_lifetimes(parameters)


@dg.multi_asset(
    name="sbg_fit",
    specs=[
        dg.AssetSpec(
            SBG_PARAMETERS_KEY,
            description=(
                "Shifted-beta-geometric retention (Fader & Hardie 2007) fitted by maximum likelihood on "
                "intermediate.int_sbg_survival: one row per segment_dimension x segment_value x billing_period "
                "(periods in that billing period's renewals, all acquisition cohorts, live subscriptions "
                "right-censored), with alpha, beta, the discounted expected lifetime at the policy's discount "
                "rate, and a status ('fitted', 'too_small', 'no_churn', 'not_identified', 'did_not_converge')"
                " and reason."
            ),
            **_MARTS_SPEC,
        ),
        dg.AssetSpec(
            RESIDUAL_LIFETIMES_KEY,
            description=(
                "Discounted expected residual lifetime (Fader & Hardie 2010) of each fitted segment of "
                "marts.sbg_parameters: one row per segment_dimension x segment_value x billing_period x "
                f"renewals_survived (0..{MAX_RENEWALS}), in payments at the same per-period discount rate, "
                "the next payment undiscounted. customer_risk values each active customer with it."
            ),
            **_MARTS_SPEC,
        ),
    ],
    pool=WAREHOUSE_POOL,
)
def sbg_parameters(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Fits the sBG per segment and billing period and tabulates the residual lifetimes."""
    fitted_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with warehouse.connect() as conn:
        lives = conn.sql(f"select {', '.join(SURVIVAL_COLUMNS)} from intermediate.int_sbg_survival").pl()
        parameters, residuals = fit_with_policy(lives, fitted_at)
        write_parameters(conn, parameters, residuals)
    fitted = parameters.filter(pl.col("status") == sbg.FITTED)
    skipped = parameters.filter(pl.col("status") != sbg.FITTED)
    context.log.info(f"sBG fitted for {fitted.height} segments, skipped {skipped.height}, from {lives.height} lives")
    yield dg.MaterializeResult(
        asset_key=SBG_PARAMETERS_KEY,
        metadata={
            "dagster/row_count": parameters.height,
            "lives": lives.height,
            "segments_fitted": fitted.height,
            "segments_skipped": skipped.height,
            "skipped_by_status": dg.MetadataValue.json(
                dict(skipped.group_by("status").len().sort("status").iter_rows())
            ),
            "preview": dg.MetadataValue.md(_preview(parameters)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=RESIDUAL_LIFETIMES_KEY,
        metadata={
            "dagster/row_count": residuals.height,
            "segments": fitted.height,
            "max_renewals": MAX_RENEWALS,
            "preview": dg.MetadataValue.md(_residual_preview(residuals)),
        },
    )
