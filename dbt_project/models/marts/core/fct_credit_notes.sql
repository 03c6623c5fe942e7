{#- One row per credit note (a credit lowers what is owed, a refund returns
    money paid), with USD at its issue date's rate. -#}
with

credit_notes as (

    select * from {{ ref('stg_billing__credit_notes') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

final as (

    select
        credit_notes.credit_note_id,
        credit_notes.invoice_id,
        invoices.customer_id,
        credit_notes.issued_at,
        credit_notes.issued_date,
        credit_notes.kind,
        credit_notes.reason,
        credit_notes.amount,
        credit_notes.currency,
        credit_notes.usd_per_unit,
        credit_notes.amount_usd,
        invoices.currency as invoice_currency
    from credit_notes
    left join invoices
        on credit_notes.invoice_id = invoices.invoice_id

)

select * from final
