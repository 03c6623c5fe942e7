{#- One row per document that settles an invoice: a succeeded payment or a
    credit note (credit or refund), with the running amounts settled on the
    invoice. Amounts are the documents' face amounts, read in the invoice
    currency: the contract computes a balance in the invoice currency, and a
    payment labelled with another currency is a currency_mismatch anomaly of
    the label, not a conversion (docs/synthetic_world.md). -#}
with

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

payments as (

    select * from {{ ref('stg_billing__payments') }}

),

credit_notes as (

    select * from {{ ref('stg_billing__credit_notes') }}

),

documents as (

    select
        'payment' as settlement_type,
        payment_id as document_id,
        invoice_id,
        attempted_at as applied_at,
        amount,
        currency as document_currency
    from payments
    where is_succeeded

    union all

    select
        'credit_note' as settlement_type,
        credit_note_id as document_id,
        invoice_id,
        issued_at as applied_at,
        amount,
        currency as document_currency
    from credit_notes

),

running as (

    select
        documents.settlement_type,
        documents.document_id,
        documents.invoice_id,
        documents.applied_at,
        documents.amount,
        documents.document_currency,
        invoices.currency as invoice_currency,
        invoices.total_amount,
        sum(documents.amount) over (
            partition by documents.invoice_id
            order by documents.applied_at asc, documents.settlement_type desc, documents.document_id asc
            rows between unbounded preceding and current row
        ) as running_settled_amount
    from documents
    inner join invoices
        on documents.invoice_id = invoices.invoice_id

),

final as (

    select
        *,
        -- the document that brings the balance to zero (at most one per invoice)
        running_settled_amount >= total_amount and running_settled_amount - amount < total_amount as is_closing,
        document_currency <> invoice_currency as is_currency_mismatch
    from running

)

select * from final
