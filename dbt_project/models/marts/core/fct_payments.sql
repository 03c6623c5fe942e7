{#- One row per payment attempt (failed ones included), with USD at the attempt
    date's rate and the currency of the invoice it pays. -#}
with

attempts as (

    select * from {{ ref('int_invoice_payment_attempts') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

final as (

    select
        attempts.payment_id,
        attempts.invoice_id,
        attempts.customer_id,
        attempts.attempted_at,
        attempts.attempted_date,
        attempts.attempt_number,
        attempts.attempt_sequence,
        attempts.is_first_attempt,
        attempts.is_retry,
        attempts.status,
        attempts.is_succeeded,
        attempts.is_failed,
        attempts.failure_code,
        attempts.method,
        attempts.gateway,
        attempts.amount,
        attempts.currency,
        attempts.usd_per_unit,
        attempts.amount_usd,
        invoices.currency as invoice_currency,
        attempts.currency <> invoices.currency as is_currency_mismatch
    from attempts
    left join invoices
        on attempts.invoice_id = invoices.invoice_id

)

select * from final
