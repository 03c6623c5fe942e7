{#- What customers say, per month and segment: billing tickets per 100 active
    customers (by subcategory), invoice clarity, CSAT and NPS. A ticket or an
    answer counts in the month it was created, under the customer's segment at
    the start of that month (int_customer_months). -#}
{%- set subcategories = var('billing_ticket_subcategories') -%}

with

customer_months as (

    select * from {{ ref('int_customer_months') }}

),

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

responses as (

    select * from {{ ref('stg_surveys__responses') }}

),

ticket_counts as (

    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'created_at') }} as date) as month,
        sum(case when category = 'billing' then 1 else 0 end) as billing_tickets,
        {%- for subcategory in subcategories %}
            sum(case when category = 'billing' and subcategory = '{{ subcategory }}' then 1 else 0 end)
                as billing_tickets_{{ subcategory }},
        {%- endfor %}
        count(*) as all_tickets
    from tickets
    group by 1, 2

),

response_stats as (

    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'responded_at') }} as date) as month,
        sum(case when survey = 'invoice_clarity' then 1 else 0 end) as clarity_responses,
        sum(case when survey = 'invoice_clarity' then score else 0 end) as clarity_score_sum,
        sum(case when survey = 'invoice_clarity' and score <= 2 then 1 else 0 end) as clarity_low_responses,
        sum(case when survey = 'csat' then 1 else 0 end) as csat_responses,
        sum(case when survey = 'csat' then score else 0 end) as csat_score_sum,
        sum(case when survey = 'nps' then 1 else 0 end) as nps_responses,
        sum(case when survey = 'nps' and score >= 9 then 1 else 0 end) as nps_promoters,
        sum(case when survey = 'nps' and score <= 6 then 1 else 0 end) as nps_detractors
    from responses
    group by 1, 2

),

per_customer_month as (

    select
        customer_months.month,
        customer_months.customer_id,
        customer_months.company_size,
        customer_months.region,
        customer_months.tier,
        customer_months.billing_period,
        customer_months.acquisition_channel,
        customer_months.tenure_band,
        case when customer_months.is_active_start then 1 else 0 end as is_active_start,
        coalesce(ticket_counts.billing_tickets, 0) as billing_tickets,
        {%- for subcategory in subcategories %}
            coalesce(ticket_counts.billing_tickets_{{ subcategory }}, 0) as billing_tickets_{{ subcategory }},
        {%- endfor %}
        coalesce(response_stats.clarity_responses, 0) as clarity_responses,
        coalesce(response_stats.clarity_score_sum, 0) as clarity_score_sum,
        coalesce(response_stats.clarity_low_responses, 0) as clarity_low_responses,
        coalesce(response_stats.csat_responses, 0) as csat_responses,
        coalesce(response_stats.csat_score_sum, 0) as csat_score_sum,
        coalesce(response_stats.nps_responses, 0) as nps_responses,
        coalesce(response_stats.nps_promoters, 0) as nps_promoters,
        coalesce(response_stats.nps_detractors, 0) as nps_detractors
    from customer_months
    left join ticket_counts
        on
            customer_months.customer_id = ticket_counts.customer_id
            and customer_months.month = ticket_counts.month
    left join response_stats
        on
            customer_months.customer_id = response_stats.customer_id
            and customer_months.month = response_stats.month

),

segmented as (

    {{ unpivot_segments('per_customer_month') }}

),

aggregated as (

    select
        month,
        segment_dimension,
        segment_value,
        cast(sum(is_active_start) as bigint) as active_customers,
        cast(sum(billing_tickets) as bigint) as billing_tickets,
        {%- for subcategory in subcategories %}
            cast(sum(billing_tickets_{{ subcategory }}) as bigint) as billing_tickets_{{ subcategory }},
        {%- endfor %}
        cast(sum(clarity_responses) as bigint) as invoice_clarity_responses,
        cast(sum(clarity_score_sum) as bigint) as clarity_score_sum,
        cast(sum(clarity_low_responses) as bigint) as clarity_low_responses,
        cast(sum(csat_responses) as bigint) as csat_responses,
        cast(sum(csat_score_sum) as bigint) as csat_score_sum,
        cast(sum(nps_responses) as bigint) as nps_responses,
        cast(sum(nps_promoters) as bigint) as nps_promoters,
        cast(sum(nps_detractors) as bigint) as nps_detractors
    from segmented
    group by 1, 2, 3

),

-- every segment value seen in any month appears in every month (zeros, not gaps)
months as (

    select distinct month from per_customer_month

),

segment_values as (

    select distinct
        segment_dimension,
        segment_value
    from segmented

),

filled as (

    select
        months.month,
        segment_values.segment_dimension,
        segment_values.segment_value,
        coalesce(aggregated.active_customers, 0) as active_customers,
        coalesce(aggregated.billing_tickets, 0) as billing_tickets,
        {%- for subcategory in subcategories %}
            coalesce(aggregated.billing_tickets_{{ subcategory }}, 0) as billing_tickets_{{ subcategory }},
        {%- endfor %}
        coalesce(aggregated.invoice_clarity_responses, 0) as invoice_clarity_responses,
        coalesce(aggregated.clarity_score_sum, 0) as clarity_score_sum,
        coalesce(aggregated.clarity_low_responses, 0) as clarity_low_responses,
        coalesce(aggregated.csat_responses, 0) as csat_responses,
        coalesce(aggregated.csat_score_sum, 0) as csat_score_sum,
        coalesce(aggregated.nps_responses, 0) as nps_responses,
        coalesce(aggregated.nps_promoters, 0) as nps_promoters,
        coalesce(aggregated.nps_detractors, 0) as nps_detractors
    from months
    cross join segment_values
    left join aggregated
        on
            months.month = aggregated.month
            and segment_values.segment_dimension = aggregated.segment_dimension
            and segment_values.segment_value = aggregated.segment_value

),

final as (

    select
        month,
        segment_dimension,
        segment_value,
        active_customers,
        billing_tickets,
        case
            -- doubles, divided as doubles on every adapter (macros/cross_db/doubles.sql)
            when active_customers > 0 then cast(100 * billing_tickets as double) / active_customers
        end as billing_tickets_per_100,
        {%- for subcategory in subcategories %}
            billing_tickets_{{ subcategory }},
            case
                when active_customers > 0
                    then cast(100 * billing_tickets_{{ subcategory }} as double) / active_customers
            end as billing_tickets_{{ subcategory }}_per_100,
        {%- endfor %}
        invoice_clarity_responses,
        case
            when invoice_clarity_responses > 0 then cast(clarity_score_sum as double) / invoice_clarity_responses
        end as invoice_clarity_mean,
        case
            when invoice_clarity_responses > 0 then cast(clarity_low_responses as double) / invoice_clarity_responses
        end as invoice_clarity_low_share,
        csat_responses,
        case when csat_responses > 0 then cast(csat_score_sum as double) / csat_responses end as csat_mean,
        nps_responses,
        nps_promoters,
        nps_detractors,
        case
            when nps_responses > 0 then cast(100 * (nps_promoters - nps_detractors) as double) / nps_responses
        end as nps
    from filled

)

select * from final
