{#- Customer lifetime value per month and segment, two ways:
    - simple: ARPA x gross margin / mean logo churn rate of the trailing 12 months;
    - sBG: gross margin x revenue per billing period x discounted expected
      lifetime (DEL) of the shifted-beta-geometric fit (marts.sbg_parameters).
    sBG fits are per billing period (renewals are only comparable within one),
    so a segment mixing periods gets the customer-weighted mean over its
    billing periods; each period uses the segment's own fit, else the `all`
    fit of that period. It lives in marts/value because it reads the table the
    Python sBG asset writes (second dbt op). -#}
with

churn as (

    select * from {{ ref('kpi_churn') }}

),

customer_months as (

    select * from {{ ref('int_customer_months') }}
    where is_active_start

),

sbg_fits as (

    select * from {{ source('value', 'sbg_parameters') }}
    where status = 'fitted'

),

simple_clv as (

    select
        month,
        segment_dimension,
        segment_value,
        customers_start,
        mrr_start_usd,
        -- doubles, divided and rounded alike on every adapter (macros/cross_db/doubles.sql)
        case
            when customers_start > 0 then cast(mrr_start_usd as double) / customers_start
        end as arpa_usd,
        avg(logo_churn_rate) over (
            partition by segment_dimension, segment_value
            order by month
            rows between 11 preceding and current row
        ) as trailing_logo_churn_rate,
        count(logo_churn_rate) over (
            partition by segment_dimension, segment_value
            order by month
            rows between 11 preceding and current row
        ) as churn_months_in_window
    from churn

),

segmented as (

    {{ unpivot_segments('customer_months') }}

),

by_billing_period as (

    select
        month,
        segment_dimension,
        segment_value,
        billing_period,
        count(*) as customers,
        sum(mrr_start_usd) as mrr_usd
    from segmented
    group by 1, 2, 3, 4

),

with_fits as (

    select
        by_billing_period.*,
        coalesce(segment_fit.alpha, overall_fit.alpha) as alpha,
        coalesce(segment_fit.beta, overall_fit.beta) as beta,
        coalesce(segment_fit.discounted_expected_lifetime, overall_fit.discounted_expected_lifetime)
            as discounted_expected_lifetime,
        case
            when segment_fit.alpha is not null then 'segment'
            when overall_fit.alpha is not null then 'all'
        end as fit_source,
        {{ months_in_billing_period('by_billing_period.billing_period') }} as months_per_period
    from by_billing_period
    left join sbg_fits as segment_fit
        on
            by_billing_period.segment_dimension = segment_fit.segment_dimension
            and by_billing_period.segment_value = segment_fit.segment_value
            and by_billing_period.billing_period = segment_fit.billing_period
    left join sbg_fits as overall_fit
        on
            overall_fit.segment_dimension = 'all'
            and by_billing_period.billing_period = overall_fit.billing_period

),

-- gross margin x revenue per period (MRR x months) x DEL, per customer of the period
period_values as (

    select
        *,
        {{ var('gross_margin') }} * (cast(mrr_usd as double) / customers)
        * months_per_period * discounted_expected_lifetime
            as clv_sbg_per_customer_usd,
        row_number() over (
            partition by month, segment_dimension, segment_value
            order by customers desc, billing_period asc
        ) as billing_period_rank
    from with_fits

),

sbg_clv as (

    select
        month,
        segment_dimension,
        segment_value,
        sum(case when clv_sbg_per_customer_usd is not null then customers else 0 end) as customers_with_fit,
        sum(customers) as customers,
        sum(clv_sbg_per_customer_usd * customers)
        / nullif(sum(case when clv_sbg_per_customer_usd is not null then customers else 0 end), 0)
            as clv_sbg_usd
    from period_values
    group by 1, 2, 3

),

-- the fit shown beside the segment: that of its most common billing period
main_fits as (

    select
        month,
        segment_dimension,
        segment_value,
        billing_period as sbg_billing_period,
        alpha as sbg_alpha,
        beta as sbg_beta,
        fit_source as sbg_fit_source
    from period_values
    where billing_period_rank = 1

),

final as (

    select
        simple_clv.month,
        simple_clv.segment_dimension,
        simple_clv.segment_value,
        simple_clv.customers_start,
        simple_clv.mrr_start_usd,
        {{ round_double('simple_clv.arpa_usd', 4) }} as arpa_usd,
        -- a trailing-12-month mean needs 12 months with a churn rate
        case
            when simple_clv.churn_months_in_window = 12
                then {{ round_double('simple_clv.trailing_logo_churn_rate', 6) }}
        end as trailing_12m_logo_churn_rate,
        case
            when simple_clv.churn_months_in_window = 12 and simple_clv.trailing_logo_churn_rate > 0
                then {{ round_double(
                    'simple_clv.arpa_usd * ' ~ var('gross_margin') ~ ' / simple_clv.trailing_logo_churn_rate', 2
                ) }}
        end as clv_simple_usd,
        main_fits.sbg_billing_period,
        main_fits.sbg_alpha,
        main_fits.sbg_beta,
        main_fits.sbg_fit_source,
        {{ round_double('sbg_clv.clv_sbg_usd', 2) }} as clv_sbg_usd,
        case
            when sbg_clv.customers > 0
                then {{ round_double('cast(sbg_clv.customers_with_fit as double) / sbg_clv.customers', 4) }}
        end as clv_sbg_coverage
    from simple_clv
    left join sbg_clv
        on
            simple_clv.month = sbg_clv.month
            and simple_clv.segment_dimension = sbg_clv.segment_dimension
            and simple_clv.segment_value = sbg_clv.segment_value
    left join main_fits
        on
            simple_clv.month = main_fits.month
            and simple_clv.segment_dimension = main_fits.segment_dimension
            and simple_clv.segment_value = main_fits.segment_value

)

select * from final
