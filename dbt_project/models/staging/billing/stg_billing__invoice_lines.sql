{#- Lines carry no currency or date of their own: USD conversion happens
    where they meet their invoice (fct_invoice_lines). -#}
with

source as (

    select * from {{ source('raw', 'invoice_lines') }}

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
        tax_amount
    from versioned
    where version_rank = 1

)

select * from final
