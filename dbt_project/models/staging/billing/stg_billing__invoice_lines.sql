{#- Lines carry no currency or date of their own: USD conversion happens
    where they meet their invoice (fct_invoice_lines). -#}
{{
    config(
        materialized='incremental',
        unique_key='line_id',
        incremental_strategy=upsert_strategy()
    )
}}

with

source as (

    {{ raw_rows_to_stage(source('raw', 'invoice_lines'), 'line_id') }}

),

versioned as (

    select
        *,
        {{ version_rank(['line_id']) }} as version_rank
    from source

),

final as (

    select
        line_id,
        invoice_id,
        product_id,
        description,
        quantity,
        unit_amount,
        amount,
        discount_amount,
        proration as is_proration,
        period_start,
        period_end,
        tax_rate,
        tax_amount,
        {{ restage_marker() }} as restaged_after_batch_id
    from versioned
    where version_rank = 1

)

select * from final
