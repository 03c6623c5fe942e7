{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy=upsert_strategy()
    )
}}

with

source as (

    {{ raw_rows_to_stage(source('raw', 'customers'), 'customer_id') }}

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
        _batch_id as batch_id,
        {{ restage_marker() }} as restaged_after_batch_id
    from versioned
    where version_rank = 1

)

select * from final
