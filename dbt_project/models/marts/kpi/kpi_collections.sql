{#- One row per month x segment_dimension x segment_value: how invoices get
    paid (metrics.md). Each column says which month it is keyed on: the
    attempt columns on the month of issue, payment timing on the month the
    invoice was paid, write-offs on the month marked uncollectible, overdue
    AR at the month's last instant. Segment = the invoice's. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

balances as (

    select * from {{ ref('int_invoice_balances') }}

),

segment_months as (

    select * from {{ ref('int_invoice_segment_months') }}

),

issued as (

    select
        issued_month as month,
        company_size,
        region,
        tier,
        billing_period,
        acquisition_channel,
        tenure_band,
        case when payment_attempts > 0 then 1 else 0 end as invoices_with_attempt,
        case when is_first_attempt_failed then 1 else 0 end as invoices_first_attempt_failed,
        case when is_first_attempt_failed and settled_at is not null then 1 else 0 end as invoices_recovered,
        case when is_first_attempt_failed and settled_at is not null then total_usd else 0 end as recovered_usd,
        0 as invoices_paid,
        cast(null as {{ dbt.type_numeric() }}) as days_to_payment,
        0 as invoices_uncollectible,
        0 as involuntary_churn_usd,
        0 as overdue_ar_usd
    from invoices
    where status <> 'draft'

),

paid as (

    select
        cast({{ dbt.date_trunc('month', 'settled_at') }} as date) as month,
        company_size,
        region,
        tier,
        billing_period,
        acquisition_channel,
        tenure_band,
        0 as invoices_with_attempt,
        0 as invoices_first_attempt_failed,
        0 as invoices_recovered,
        0 as recovered_usd,
        1 as invoices_paid,
        days_to_payment,
        0 as invoices_uncollectible,
        0 as involuntary_churn_usd,
        0 as overdue_ar_usd
    from invoices
    where status <> 'draft' and settled_at is not null

),

written_off as (

    select
        cast({{ dbt.date_trunc('month', 'uncollectible_at') }} as date) as month,
        company_size,
        region,
        tier,
        billing_period,
        acquisition_channel,
        tenure_band,
        0 as invoices_with_attempt,
        0 as invoices_first_attempt_failed,
        0 as invoices_recovered,
        0 as recovered_usd,
        0 as invoices_paid,
        cast(null as {{ dbt.type_numeric() }}) as days_to_payment,
        1 as invoices_uncollectible,
        total_usd as involuntary_churn_usd,
        0 as overdue_ar_usd
    from invoices
    where status <> 'draft' and uncollectible_at is not null

),

overdue as (

    select
        balances.month,
        invoices.company_size,
        invoices.region,
        invoices.tier,
        invoices.billing_period,
        invoices.acquisition_channel,
        invoices.tenure_band,
        0 as invoices_with_attempt,
        0 as invoices_first_attempt_failed,
        0 as invoices_recovered,
        0 as recovered_usd,
        0 as invoices_paid,
        cast(null as {{ dbt.type_numeric() }}) as days_to_payment,
        0 as invoices_uncollectible,
        0 as involuntary_churn_usd,
        balances.balance_usd as overdue_ar_usd
    from balances
    inner join invoices
        on balances.invoice_id = invoices.invoice_id
    where balances.is_overdue

),

measures as (

    select * from issued
    union all
    select * from paid
    union all
    select * from written_off
    union all
    select * from overdue

),

segmented as (

    {{ unpivot_segments('measures') }}

),

monthly as (

    select
        month,
        segment_dimension,
        segment_value,
        cast(sum(invoices_with_attempt) as {{ dbt.type_int() }}) as invoices_with_attempt,
        cast(sum(invoices_first_attempt_failed) as {{ dbt.type_int() }}) as invoices_first_attempt_failed,
        cast(sum(invoices_recovered) as {{ dbt.type_int() }}) as invoices_recovered,
        sum(recovered_usd) as recovered_usd,
        cast(sum(invoices_paid) as {{ dbt.type_int() }}) as invoices_paid,
        percentile_cont(0.5) within group (order by days_to_payment) as median_days_to_payment,
        cast(sum(invoices_uncollectible) as {{ dbt.type_int() }}) as invoices_uncollectible,
        sum(involuntary_churn_usd) as involuntary_churn_usd,
        sum(overdue_ar_usd) as overdue_ar_usd
    from segmented
    group by month, segment_dimension, segment_value

),

filled as (

    select
        segment_months.month,
        segment_months.segment_dimension,
        segment_months.segment_value,
        coalesce(monthly.invoices_with_attempt, 0) as invoices_with_attempt,
        coalesce(monthly.invoices_first_attempt_failed, 0) as invoices_first_attempt_failed,
        coalesce(monthly.invoices_recovered, 0) as invoices_recovered,
        coalesce(monthly.recovered_usd, 0) as recovered_usd,
        coalesce(monthly.invoices_paid, 0) as invoices_paid,
        monthly.median_days_to_payment,
        coalesce(monthly.invoices_uncollectible, 0) as invoices_uncollectible,
        coalesce(monthly.involuntary_churn_usd, 0) as involuntary_churn_usd,
        coalesce(monthly.overdue_ar_usd, 0) as overdue_ar_usd
    from segment_months
    left join monthly
        on
            segment_months.month = monthly.month
            and segment_months.segment_dimension = monthly.segment_dimension
            and segment_months.segment_value = monthly.segment_value

),

final as (

    select
        month,
        segment_dimension,
        segment_value,
        invoices_with_attempt,
        invoices_first_attempt_failed,
        case
            when invoices_with_attempt > 0
                then {{ round_double('cast(invoices_first_attempt_failed as double) / invoices_with_attempt', 4) }}
        end as first_attempt_failure_rate,
        invoices_recovered,
        case
            when invoices_first_attempt_failed > 0
                then {{ round_double('cast(invoices_recovered as double) / invoices_first_attempt_failed', 4) }}
        end as recovered_rate,
        recovered_usd,
        invoices_paid,
        {{ round_double('median_days_to_payment', 2) }} as median_days_to_payment,
        invoices_uncollectible,
        involuntary_churn_usd,
        overdue_ar_usd
    from filled

)

select * from final
