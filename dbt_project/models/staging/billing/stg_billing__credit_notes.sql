{{
    config(
        materialized='incremental',
        unique_key='credit_note_id',
        incremental_strategy=upsert_strategy()
    )
}}

with

source as (

    {{ raw_rows_to_stage(source('raw', 'credit_notes'), 'credit_note_id', document_date='issued_date') }}

),

fx_rates as (

    select * from {{ ref('stg_finance__fx_rates') }}

),

versioned as (

    select
        *,
        {{ version_rank(['credit_note_id']) }} as version_rank
    from source

),

latest as (

    select
        credit_note_id,
        invoice_id,
        issued_at,
        cast(issued_at as date) as issued_date,
        amount,
        currency,
        kind,
        reason
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
        on {{ fx_rate_join('fx_rates', 'latest.currency', 'latest.issued_date') }}

)

select * from final
