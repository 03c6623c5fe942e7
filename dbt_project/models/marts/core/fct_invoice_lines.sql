{#- One row per invoice line, with USD at its invoice's rate (issue date): lines
    carry neither a currency nor a date of their own. Left join, so a line
    whose invoice is missing keeps its row (with null USD) instead of
    vanishing; a row-count test guards against fan-out. -#}
with

invoice_lines as (

    select * from {{ ref('stg_billing__invoice_lines') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

final as (

    select
        invoice_lines.line_id,
        invoice_lines.invoice_id,
        invoices.customer_id,
        invoices.issued_at,
        invoice_lines.product_id,
        invoice_lines.description,
        invoice_lines.is_proration,
        invoice_lines.period_start,
        invoice_lines.period_end,
        invoice_lines.quantity,
        invoices.currency,
        invoice_lines.unit_amount,
        invoice_lines.amount,
        invoice_lines.discount_amount,
        invoice_lines.tax_rate,
        invoice_lines.tax_amount,
        invoices.usd_per_unit,
        {{ to_usd('invoice_lines.unit_amount', 'invoices.usd_per_unit') }} as unit_amount_usd,
        {{ to_usd('invoice_lines.amount', 'invoices.usd_per_unit') }} as amount_usd,
        {{ to_usd('invoice_lines.discount_amount', 'invoices.usd_per_unit') }} as discount_usd,
        {{ to_usd('invoice_lines.tax_amount', 'invoices.usd_per_unit') }} as tax_usd
    from invoice_lines
    left join invoices
        on invoice_lines.invoice_id = invoices.invoice_id

)

select * from final
