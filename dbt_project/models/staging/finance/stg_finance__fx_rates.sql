with

source as (

    select * from {{ source('raw', 'fx_rates') }}

),

versioned as (

    select
        *,
        {{ version_rank(['rate_date', 'currency']) }} as version_rank
    from source

),

latest as (

    select
        rate_date,
        currency,
        usd_per_unit,
        _batch_id as batch_id
    from versioned
    where version_rank = 1

),

final as (

    select
        rate_date,
        currency,
        usd_per_unit,
        rate_date as valid_from,
        lead(rate_date) over (partition by currency order by rate_date) as valid_to,
        batch_id
    from latest

)

select * from final
