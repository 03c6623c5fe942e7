{#- One row per customer: the segment attributes every mart slices by.
    Names and emails stay in staging (personal data). -#}
with

customers as (

    select * from {{ ref('stg_billing__customers') }}

),

countries as (

    select * from {{ ref('ref_countries') }}

),

subscription_starts as (

    select
        customer_id,
        min(effective_at) as first_subscription_at
    from {{ ref('stg_billing__subscription_events') }}
    where event_type = 'created'
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.company_size,
        customers.country,
        countries.region,
        countries.tax_rate,
        customers.currency,
        customers.industry,
        customers.acquisition_channel,
        customers.created_at,
        subscription_starts.first_subscription_at,
        cast({{ dbt.date_trunc('month', 'subscription_starts.first_subscription_at') }} as date)
            as first_subscription_month
    from customers
    left join countries
        on customers.country = countries.country
    left join subscription_starts
        on customers.customer_id = subscription_starts.customer_id

)

select * from final
