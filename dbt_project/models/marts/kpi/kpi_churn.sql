{#- One row per month x segment_dimension x segment_value: logo churn,
    renewals and the MRR bridge (metrics.md, marts.kpi_churn). Every segment
    value seen in any month appears in every month, with zeros. -#}
with

customer_months as (

    select * from {{ ref('int_customer_months') }}

),

reporting_months as (

    select * from {{ ref('int_subscription_reporting_months') }}

),

-- Months with neither activity nor a flow carry no segment and add nothing.
in_scope as (

    select *
    from customer_months
    where is_active_start or is_active_end or is_new_customer or is_reactivated

),

segmented as (

    {{ unpivot_segments('in_scope') }}

),

aggregated as (

    select
        month,
        segment_dimension,
        segment_value,
        count(case when is_active_start then 1 end) as customers_start,
        count(case when is_churned then 1 end) as churned,
        count(case when churn_type = 'voluntary' then 1 end) as churned_voluntary,
        count(case when churn_type = 'involuntary' then 1 end) as churned_involuntary,
        count(case when has_renewal_in_month then 1 end) as customers_up_for_renewal,
        count(case when has_renewal_in_month and is_churned then 1 end) as churned_up_for_renewal,
        count(case when is_new_customer then 1 end) as new_customers,
        count(case when is_reactivated then 1 end) as reactivated_customers,
        sum(mrr_start_usd) as mrr_start_usd,
        sum(new_mrr_usd) as new_mrr_usd,
        sum(expansion_mrr_usd) as expansion_mrr_usd,
        sum(contraction_mrr_usd) as contraction_mrr_usd,
        sum(churned_mrr_usd) as churned_mrr_usd,
        sum(reactivation_mrr_usd) as reactivation_mrr_usd,
        sum(mrr_end_usd) as mrr_end_usd
    from segmented
    group by month, segment_dimension, segment_value

),

segment_values as (

    select distinct
        segment_dimension,
        segment_value
    from aggregated

),

month_segments as (

    select
        reporting_months.month,
        segment_values.segment_dimension,
        segment_values.segment_value
    from reporting_months
    cross join segment_values

),

filled as (

    select
        month_segments.month,
        month_segments.segment_dimension,
        month_segments.segment_value,
        coalesce(aggregated.customers_start, 0) as customers_start,
        coalesce(aggregated.churned, 0) as churned,
        coalesce(aggregated.churned_voluntary, 0) as churned_voluntary,
        coalesce(aggregated.churned_involuntary, 0) as churned_involuntary,
        coalesce(aggregated.customers_up_for_renewal, 0) as customers_up_for_renewal,
        coalesce(aggregated.churned_up_for_renewal, 0) as churned_up_for_renewal,
        coalesce(aggregated.new_customers, 0) as new_customers,
        coalesce(aggregated.reactivated_customers, 0) as reactivated_customers,
        coalesce(aggregated.mrr_start_usd, 0) as mrr_start_usd,
        coalesce(aggregated.new_mrr_usd, 0) as new_mrr_usd,
        coalesce(aggregated.expansion_mrr_usd, 0) as expansion_mrr_usd,
        coalesce(aggregated.contraction_mrr_usd, 0) as contraction_mrr_usd,
        coalesce(aggregated.churned_mrr_usd, 0) as churned_mrr_usd,
        coalesce(aggregated.reactivation_mrr_usd, 0) as reactivation_mrr_usd,
        coalesce(aggregated.mrr_end_usd, 0) as mrr_end_usd
    from month_segments
    left join aggregated
        on
            month_segments.month = aggregated.month
            and month_segments.segment_dimension = aggregated.segment_dimension
            and month_segments.segment_value = aggregated.segment_value

),

final as (

    select
        month,
        segment_dimension,
        segment_value,
        customers_start,
        churned,
        churned_voluntary,
        churned_involuntary,
        -- rates are doubles, divided as doubles on every adapter (macros/cross_db/doubles.sql)
        cast(churned as double) / nullif(customers_start, 0) as logo_churn_rate,
        customers_up_for_renewal,
        cast(churned_up_for_renewal as double) / nullif(customers_up_for_renewal, 0) as renewal_churn_rate,
        new_customers,
        reactivated_customers,
        mrr_start_usd,
        new_mrr_usd,
        expansion_mrr_usd,
        contraction_mrr_usd,
        churned_mrr_usd,
        reactivation_mrr_usd,
        mrr_end_usd,
        cast(mrr_start_usd - contraction_mrr_usd - churned_mrr_usd as double)
        / nullif(mrr_start_usd, 0) as gross_revenue_retention,
        cast(mrr_start_usd + expansion_mrr_usd - contraction_mrr_usd - churned_mrr_usd as double)
        / nullif(mrr_start_usd, 0) as net_revenue_retention
    from filled

)

select * from final
