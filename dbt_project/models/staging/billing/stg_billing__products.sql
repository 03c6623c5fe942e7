with

source as (

    select * from {{ source('raw', 'products') }}

),

versioned as (

    select
        *,
        {{ version_rank(['product_id', 'currency', 'valid_from']) }} as version_rank
    from source

),

final as (

    select
        concat_ws('|', product_id, currency, cast(valid_from as string)) as price_id,
        product_id,
        name as product_name,
        product_type,
        tier,
        billing_period,
        currency,
        unit_amount,
        valid_from,
        valid_to,
        product_type in ('plan', 'addon') as is_recurring
    from versioned
    where version_rank = 1

)

select * from final
