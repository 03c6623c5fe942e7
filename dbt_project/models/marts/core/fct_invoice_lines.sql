{#- One row per invoice line, with USD at its invoice's rate (issue date): lines
    carry neither a currency nor a date of their own. Left join, so a line
    whose invoice is missing keeps its row (with null USD) instead of
    vanishing; a row-count test guards against fan-out.
    Incremental: a build recomputes the lines it restaged and the lines of the
    invoices it restaged (the header gives customer, date, currency and rate). -#}
{{
    config(
        materialized='incremental',
        unique_key='line_id',
        incremental_strategy=upsert_strategy()
    )
}}

{%- set changed_line_ids -%}
    select restaged_lines.line_id
    from ({{ restaged_rows(ref('stg_billing__invoice_lines')) }}) as restaged_lines
    union all
    select lines_of_restaged_invoices.line_id
    from {{ ref('stg_billing__invoice_lines') }} as lines_of_restaged_invoices
    inner join ({{ restaged_rows(ref('stg_billing__invoices')) }}) as restaged_invoices
        on lines_of_restaged_invoices.invoice_id = restaged_invoices.invoice_id
{%- endset %}

with

invoice_lines as (

    {{ rows_to_rebuild(ref('stg_billing__invoice_lines'), 'line_id', changed_line_ids) }}

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
