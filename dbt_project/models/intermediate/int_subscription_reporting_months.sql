{#- One row per reporting month: the calendar the subscription states and the
    customer months share. From the month of the first subscription start to
    the month holding the latest fact delivered (an event or an invoice): the
    data's as-of month, reported as it stands (its churn is provisional in a
    live feed). -#}
with

subscription_events as (

    select * from {{ ref('stg_billing__subscription_events') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

month_offsets as (

    {{ month_offsets() }}

),

first_start as (

    select min(effective_at) as first_started_at
    from subscription_events
    where is_start

),

latest_event as (

    select max(effective_at) as latest_at
    from subscription_events

),

latest_invoice as (

    select max(issued_at) as latest_at
    from invoices

),

window_bounds as (

    select
        {{ dbt.date_trunc('month', 'first_start.first_started_at') }} as first_month_start_at,
        {{ dbt.date_trunc(
            'month',
            'case when latest_invoice.latest_at > latest_event.latest_at'
            ~ ' then latest_invoice.latest_at else latest_event.latest_at end'
        ) }} as last_month_start_at
    from first_start
    cross join latest_event
    cross join latest_invoice

),

months as (

    select
        {{ dbt.dateadd('month', 'month_offsets.month_offset', 'window_bounds.first_month_start_at') }}
            as month_start_at,
        window_bounds.last_month_start_at
    from window_bounds
    cross join month_offsets
    where
        {{ dbt.dateadd('month', 'month_offsets.month_offset', 'window_bounds.first_month_start_at') }}
        <= window_bounds.last_month_start_at

),

final as (

    select
        cast(month_start_at as date) as month,
        cast(month_start_at as {{ dbt.type_timestamp() }}) as month_start_at,
        cast({{ dbt.dateadd('month', 1, 'month_start_at') }} as {{ dbt.type_timestamp() }}) as next_month_start_at,
        month_start_at = last_month_start_at as is_latest_month
    from months

)

select * from final
