{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy=upsert_strategy()
    )
}}

with

source as (

    {{ raw_rows_to_stage(source('raw', 'subscription_events'), 'event_id') }}

),

versioned as (

    select
        *,
        {{ version_rank(['event_id']) }} as version_rank
    from source

),

final as (

    select
        event_id,
        subscription_id,
        customer_id,
        event_type,
        product_id,
        quantity,
        effective_at,
        reason,
        event_type in ('created', 'reactivated') as is_start,
        event_type in ('cancelled', 'lapsed') as is_end,
        {{ restage_marker() }} as restaged_after_batch_id
    from versioned
    where version_rank = 1

)

select * from final
