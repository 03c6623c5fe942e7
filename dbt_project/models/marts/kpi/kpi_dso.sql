{#- One row per month x segment_dimension x segment_value: credit sales, AR at
    the month's last instant with its aging, and days sales outstanding by the
    simple and the countback method (metrics.md). Segment = the invoice's. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

balances as (

    select * from {{ ref('int_invoice_balances') }}

),

months as (

    select * from {{ ref('int_invoice_months') }}

),

segment_months as (

    select * from {{ ref('int_invoice_segment_months') }}

),

credit_sales as (

    select
        issued_month as month,
        company_size,
        region,
        tier,
        billing_period,
        acquisition_channel,
        tenure_band,
        total_usd as credit_sales_usd,
        0 as ar_end_usd,
        0 as ar_current_usd,
        0 as ar_1_30_usd,
        0 as ar_31_60_usd,
        0 as ar_61_90_usd,
        0 as ar_90_plus_usd,
        0 as open_invoices
    from invoices
    where status not in ('draft', 'void')

),

receivables as (

    select
        balances.month,
        invoices.company_size,
        invoices.region,
        invoices.tier,
        invoices.billing_period,
        invoices.acquisition_channel,
        invoices.tenure_band,
        0 as credit_sales_usd,
        balances.balance_usd as ar_end_usd,
        case when balances.aging_bucket = 'current' then balances.balance_usd else 0 end as ar_current_usd,
        case when balances.aging_bucket = '1-30' then balances.balance_usd else 0 end as ar_1_30_usd,
        case when balances.aging_bucket = '31-60' then balances.balance_usd else 0 end as ar_31_60_usd,
        case when balances.aging_bucket = '61-90' then balances.balance_usd else 0 end as ar_61_90_usd,
        case when balances.aging_bucket = '90+' then balances.balance_usd else 0 end as ar_90_plus_usd,
        1 as open_invoices
    from balances
    inner join invoices
        on balances.invoice_id = invoices.invoice_id

),

measures as (

    select * from credit_sales
    union all
    select * from receivables

),

segmented as (

    {{ unpivot_segments('measures') }}

),

monthly as (

    select
        month,
        segment_dimension,
        segment_value,
        sum(credit_sales_usd) as credit_sales_usd,
        sum(ar_end_usd) as ar_end_usd,
        sum(ar_current_usd) as ar_current_usd,
        sum(ar_1_30_usd) as ar_1_30_usd,
        sum(ar_31_60_usd) as ar_31_60_usd,
        sum(ar_61_90_usd) as ar_61_90_usd,
        sum(ar_90_plus_usd) as ar_90_plus_usd,
        cast(sum(open_invoices) as {{ dbt.type_int() }}) as open_invoices
    from segmented
    group by month, segment_dimension, segment_value

),

filled as (

    select
        segment_months.month,
        segment_months.segment_dimension,
        segment_months.segment_value,
        months.days_in_month,
        coalesce(monthly.credit_sales_usd, 0) as credit_sales_usd,
        coalesce(monthly.ar_end_usd, 0) as ar_end_usd,
        coalesce(monthly.ar_current_usd, 0) as ar_current_usd,
        coalesce(monthly.ar_1_30_usd, 0) as ar_1_30_usd,
        coalesce(monthly.ar_31_60_usd, 0) as ar_31_60_usd,
        coalesce(monthly.ar_61_90_usd, 0) as ar_61_90_usd,
        coalesce(monthly.ar_90_plus_usd, 0) as ar_90_plus_usd,
        coalesce(monthly.open_invoices, 0) as open_invoices
    from segment_months
    inner join months
        on segment_months.month = months.month
    left join monthly
        on
            segment_months.month = monthly.month
            and segment_months.segment_dimension = monthly.segment_dimension
            and segment_months.segment_value = monthly.segment_value

),

-- countback: from the reporting month backwards, the credit sales (and days)
-- of each earlier month accumulated, for every month with AR to explain
countback_walk as (

    select
        reporting.month,
        reporting.segment_dimension,
        reporting.segment_value,
        reporting.ar_end_usd,
        history.credit_sales_usd,
        history.days_in_month,
        sum(history.credit_sales_usd) over (
            partition by reporting.month, reporting.segment_dimension, reporting.segment_value
            order by history.month desc
            rows between unbounded preceding and current row
        ) as sales_through_usd,
        sum(history.days_in_month) over (
            partition by reporting.month, reporting.segment_dimension, reporting.segment_value
            order by history.month desc
            rows between unbounded preceding and current row
        ) as days_through
    from filled as reporting
    inner join filled as history
        on
            reporting.segment_dimension = history.segment_dimension
            and reporting.segment_value = history.segment_value
            and reporting.month >= history.month
    where reporting.ar_end_usd > 0

),

-- the month whose sales exhaust the AR counts the share of its days that the
-- remaining AR is of its sales; every later month counts all its days
countback as (

    select
        month,
        segment_dimension,
        segment_value,
        (days_through - days_in_month)
        -- a double on every adapter (macros/cross_db/doubles.sql)
        + cast(days_in_month * (ar_end_usd - (sales_through_usd - credit_sales_usd)) as double) / credit_sales_usd
            as dso_countback_days
    from countback_walk
    where
        credit_sales_usd > 0
        and sales_through_usd - credit_sales_usd < ar_end_usd
        and sales_through_usd >= ar_end_usd

),

final as (

    select
        filled.month,
        filled.segment_dimension,
        filled.segment_value,
        filled.days_in_month,
        filled.credit_sales_usd,
        filled.ar_end_usd,
        filled.ar_current_usd,
        filled.ar_1_30_usd + filled.ar_31_60_usd + filled.ar_61_90_usd + filled.ar_90_plus_usd as overdue_ar_usd,
        filled.ar_1_30_usd,
        filled.ar_31_60_usd,
        filled.ar_61_90_usd,
        filled.ar_90_plus_usd,
        filled.open_invoices,
        case
            when filled.credit_sales_usd > 0
                then {{ round_double(
                    'cast(filled.ar_end_usd as double) / filled.credit_sales_usd * filled.days_in_month', 2
                ) }}
        end as dso_days,
        -- null when the whole history's credit sales cannot explain the AR
        case
            when filled.ar_end_usd = 0 then 0
            else {{ round_double('countback.dso_countback_days', 2) }}
        end as dso_countback_days
    from filled
    left join countback
        on
            filled.month = countback.month
            and filled.segment_dimension = countback.segment_dimension
            and filled.segment_value = countback.segment_value

)

select * from final
