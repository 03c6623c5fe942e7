{#- One row per customer active at the first instant of the latest reporting
    month and still active at its end: its churn-risk score and drivers (int_customer_risk_monthly), its
    current MRR, the expected residual lifetime value from the sBG fit of its
    company_size x billing_period (else all x billing_period) at the renewals
    its current life has survived, and the value at risk. It reads the table
    the Python sBG asset writes, so it builds in the second dbt op. -#}
{%- set driver_names = var('risk')['drivers'] -%}
with

risk_monthly as (

    select * from {{ ref('int_customer_risk_monthly') }}

),

reporting_months as (

    select * from {{ ref('int_subscription_reporting_months') }}

),

customer_months as (

    select * from {{ ref('int_customer_months') }}

),

residual_lifetimes as (

    select * from {{ source('value', 'sbg_residual_lifetimes') }}

),

-- scored at the latest month's first instant; customers who have left since
-- (churned during that month) are not at risk any more and are not exported
current_risk as (

    select risk_monthly.*
    from risk_monthly
    inner join reporting_months
        on risk_monthly.month = reporting_months.month
    inner join customer_months
        on
            risk_monthly.customer_id = customer_months.customer_id
            and risk_monthly.month = customer_months.month
    where reporting_months.is_latest_month and customer_months.is_active_end

),

-- the table stops at a cap of renewals; a longer life is valued at the cap
segment_caps as (

    select
        segment_dimension,
        segment_value,
        billing_period,
        max(renewals_survived) as max_renewals_survived
    from residual_lifetimes
    group by segment_dimension, segment_value, billing_period

),

-- the customer's company_size x billing_period fit first, else all x billing_period
ranked_fits as (

    select
        current_risk.customer_id,
        residual_lifetimes.segment_dimension as residual_lifetime_basis,
        residual_lifetimes.renewals_survived as renewals_valued,
        residual_lifetimes.discounted_expected_residual_lifetime,
        row_number() over (
            partition by current_risk.customer_id
            order by case residual_lifetimes.segment_dimension when 'company_size' then 1 else 2 end
        ) as fit_rank
    from current_risk
    inner join segment_caps
        on
            current_risk.billing_period = segment_caps.billing_period
            and (
                (
                    segment_caps.segment_dimension = 'company_size'
                    and coalesce(current_risk.company_size, 'unknown') = segment_caps.segment_value
                )
                or (segment_caps.segment_dimension = 'all' and segment_caps.segment_value = 'all')
            )
    inner join residual_lifetimes
        on
            segment_caps.segment_dimension = residual_lifetimes.segment_dimension
            and segment_caps.segment_value = residual_lifetimes.segment_value
            and segment_caps.billing_period = residual_lifetimes.billing_period
            and least(current_risk.renewals_survived, segment_caps.max_renewals_survived)
            = residual_lifetimes.renewals_survived

),

valued as (

    select
        current_risk.*,
        ranked_fits.residual_lifetime_basis,
        ranked_fits.renewals_valued,
        ranked_fits.discounted_expected_residual_lifetime,
        {{ months_in_billing_period('current_risk.billing_period') }} as months_per_period
    from current_risk
    left join ranked_fits
        on
            current_risk.customer_id = ranked_fits.customer_id
            and ranked_fits.fit_rank = 1

),

-- residual value = gross margin x revenue per billing period x DERL (payments)
residual_values as (

    select
        *,
        -- a double rounded as DuckDB rounds it, on every adapter (macros/cross_db/doubles.sql)
        cast({{ round_double(
            var('gross_margin') ~ ' * mrr_start_usd * months_per_period * discounted_expected_residual_lifetime', 2
        ) }} as decimal(18, 2)) as expected_residual_lifetime_usd
    from valued

),

final as (

    select
        customer_id,
        month as as_of_month,
        company_size,
        region,
        tier,
        billing_period,
        acquisition_channel,
        tenure_band,
        tenure_months,
        risk_score,
        row_number() over (
            order by risk_score desc, expected_residual_lifetime_usd desc nulls last, customer_id asc
        ) as risk_rank,
        ntile(10) over (
            order by risk_score desc, expected_residual_lifetime_usd desc nulls last, customer_id asc
        ) as risk_decile,
        top_risk_driver,
        risk_drivers,
        failed_payments,
        billing_complaints,
        error_credit_notes,
        low_clarity_scores,
        lowest_clarity_score,
        latest_nps_score,
        nps_detractor,
        downgrades,
        overdue_balance_usd,
        overdue_mrr_multiple,
        {%- for driver in driver_names %}
            {{ driver }}_contribution,
        {%- endfor %}
        mrr_start_usd as current_mrr_usd,
        renewals_survived,
        renewals_valued,
        residual_lifetime_basis,
        discounted_expected_residual_lifetime,
        expected_residual_lifetime_usd,
        cast({{ round_double('risk_score * expected_residual_lifetime_usd', 2) }} as decimal(18, 2))
            as value_at_risk_usd,
        case
            when mrr_start_usd is null then 'no MRR: a live item has no price-book price'
            when billing_period is null then 'no billing period at the snapshot'
            when renewals_survived is null then 'no live subscription state at the snapshot'
            when residual_lifetime_basis is null
                then
                    'no sBG fit for company_size ' || coalesce(company_size, 'unknown')
                    || ' nor for all customers on ' || billing_period || ' billing'
        end as residual_lifetime_null_reason
    from residual_values

)

select * from final
