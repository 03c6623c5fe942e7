{#- Invoice headers, newest version per invoice, with USD amounts at the
    rate of the issue date (the contract's FX rule; the one lookup join that
    staging allows itself, see DECISIONS.md). -#}
{{
    config(
        materialized='incremental',
        unique_key='invoice_id',
        incremental_strategy=upsert_strategy()
    )
}}

with

source as (

    {{ raw_rows_to_stage(source('raw', 'invoices'), 'invoice_id', document_date='issued_date') }}

),

fx_rates as (

    select * from {{ ref('stg_finance__fx_rates') }}

),

versioned as (

    select
        *,
        {{ version_rank(['invoice_id'], 'updated_at') }} as version_rank
    from source

),

latest as (

    select
        invoice_id,
        customer_id,
        subscription_id,
        invoice_number,
        issued_at,
        cast(issued_at as date) as issued_date,
        due_at,
        period_start,
        period_end,
        currency,
        subtotal as subtotal_amount,
        discount_amount,
        tax_amount,
        total as total_amount,
        status,
        billing_reason,
        paid_at,
        voided_at,
        uncollectible_at,
        updated_at
    from versioned
    where version_rank = 1

),

converted as (

    select
        latest.*,
        {{ usd_per_unit('fx_rates', 'latest.currency') }} as usd_per_unit
    from latest
    left join fx_rates
        on {{ fx_rate_join('fx_rates', 'latest.currency', 'latest.issued_date') }}

),

final as (

    select
        *,
        {{ to_usd('subtotal_amount') }} as subtotal_usd,
        {{ to_usd('discount_amount') }} as discount_usd,
        {{ to_usd('tax_amount') }} as tax_usd,
        {{ to_usd('total_amount') }} as total_usd,
        {{ restage_marker() }} as restaged_after_batch_id
    from converted

)

select * from final
