with

source as (

    select * from {{ source('raw', 'subscription_events') }}

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
        event_type in ('cancelled', 'lapsed') as is_end
    from versioned
    where version_rank = 1

)

select * from final
