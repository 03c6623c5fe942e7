{#- One row per payment attempt (failed ones included), with USD at the attempt
    date's rate and the currency of the invoice it pays.
    Incremental: a build recomputes the payments of each invoice whose payments
    (and so attempt sequence) or header (currency) it restaged. -#}
{{
    config(
        materialized='incremental',
        unique_key='payment_id',
        incremental_strategy=upsert_strategy()
    )
}}

{%- set changed_invoice_ids -%}
    {{ invoices_with_restaged_payments(this) }}
    union all
    select restaged_invoices.invoice_id
    from ({{ restaged_rows(ref('stg_billing__invoices')) }}) as restaged_invoices
{%- endset %}

with

attempts as (

    {{ rows_to_rebuild(ref('int_invoice_payment_attempts'), 'invoice_id', changed_invoice_ids) }}

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
