{{
    config(
        materialized='incremental',
        unique_key='ticket_id',
        incremental_strategy=upsert_strategy()
    )
}}

with

source as (

    {{ raw_rows_to_stage(source('raw', 'support_tickets'), 'ticket_id') }}

),

versioned as (

    select
        *,
        {{ version_rank(['ticket_id']) }} as version_rank
    from source

),

final as (

    select
        ticket_id,
        customer_id,
        created_at,
        solved_at,
        category,
        subcategory,
        invoice_id,
        priority,
        status,
        channel,
        satisfaction,
        {{ restage_marker() }} as restaged_after_batch_id
    from versioned
    where version_rank = 1

)

select * from final
