with

source as (

    select * from {{ source('raw', 'customers') }}

),

versioned as (

    select
        *,
        {{ version_rank(['customer_id'], 'updated_at') }} as version_rank
    from source

),

final as (

    select
        customer_id,
        name as customer_name,
        lower(trim(email)) as email,
        country,
        currency,
        company_size,
        industry,
        acquisition_channel,
        created_at,
        updated_at,
        _batch_id as batch_id
    from versioned
    where version_rank = 1

)

select * from final
