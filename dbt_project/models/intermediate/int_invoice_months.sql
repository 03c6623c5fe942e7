{#- One row per calendar month of billing history: from the month of the first
    billing activity to the month of the latest one (invoice issued, payment
    attempted or credit note issued), which is the as-of month of the run. -#}
with

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

payments as (

    select * from {{ ref('stg_billing__payments') }}

),

credit_notes as (

    select * from {{ ref('stg_billing__credit_notes') }}

),

activity as (

    select issued_at as occurred_at
    from invoices
    where status <> 'draft'

    union all

    select attempted_at as occurred_at
    from payments

    union all

    select issued_at as occurred_at
    from credit_notes

),

bounds as (

    select
        cast({{ dbt.date_trunc('month', 'min(occurred_at)') }} as date) as first_month,
        cast({{ dbt.date_trunc('month', 'max(occurred_at)') }} as date) as last_month
    from activity

),

month_offsets as (

    {{ month_offsets() }}

),

months as (

    select
        cast({{ dbt.dateadd('month', 'month_offsets.month_offset', 'bounds.first_month') }} as date) as month,
        bounds.last_month
    from bounds
    cross join month_offsets
    where month_offsets.month_offset <= {{ dbt.datediff('bounds.first_month', 'bounds.last_month', 'month') }}

),

final as (

    select
        month,
        cast({{ dbt.dateadd('month', 1, 'month') }} as {{ dbt.type_timestamp() }}) as next_month_start_at,
        cast({{ dbt.last_day('month', 'month') }} as date) as month_last_date,
        {{ dbt.datediff('month', dbt.dateadd('month', 1, 'month'), 'day') }} as days_in_month,
        month = last_month as is_as_of_month
    from months

)

select * from final
