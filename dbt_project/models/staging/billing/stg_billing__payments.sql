{{
    config(
        materialized='incremental',
        unique_key='payment_id',
        incremental_strategy=upsert_strategy()
    )
}}

with

source as (

    {{ raw_rows_to_stage(source('raw', 'payments'), 'payment_id', document_date='attempted_date') }}

),

fx_rates as (

    select * from {{ ref('stg_finance__fx_rates') }}

),

versioned as (

    select
        *,
        {{ version_rank(['payment_id']) }} as version_rank
    from source

),

latest as (

    select
        payment_id,
        invoice_id,
        customer_id,
        attempted_at,
        cast(attempted_at as date) as attempted_date,
        amount,
        currency,
        status,
        status = 'succeeded' as is_succeeded,
        failure_code,
        method,
        gateway,
        attempt_number
    from versioned
    where version_rank = 1

),

final as (

    select
        latest.*,
        {{ usd_per_unit('fx_rates', 'latest.currency') }} as usd_per_unit,
        {{ to_usd('latest.amount', usd_per_unit('fx_rates', 'latest.currency')) }} as amount_usd,
        {{ restage_marker() }} as restaged_after_batch_id
    from latest
    left join fx_rates
        on {{ fx_rate_join('fx_rates', 'latest.currency', 'latest.attempted_date') }}

)

select * from final
