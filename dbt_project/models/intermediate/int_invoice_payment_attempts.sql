{#- One row per payment attempt, sequenced within its invoice by time: the
    first attempt, and retries (an attempt that follows a failed one; the
    second part of a split payment follows a success, so it is no retry).
    Incremental: a build resequences every payment of each invoice whose
    payments it restaged (a new attempt renumbers the later ones). -#}
{{
    config(
        materialized='incremental',
        unique_key='payment_id',
        incremental_strategy=upsert_strategy()
    )
}}

with

payments as (

    {{ rows_to_rebuild(ref('stg_billing__payments'), 'invoice_id', invoices_with_restaged_payments(this)) }}

),

sequenced as (

    select
        payments.*,
        row_number() over (
            partition by payments.invoice_id
            order by payments.attempted_at, payments.payment_id
        ) as attempt_sequence,
        lag(payments.status) over (
            partition by payments.invoice_id
            order by payments.attempted_at, payments.payment_id
        ) as previous_attempt_status
    from payments

),

final as (

    select
        payment_id,
        invoice_id,
        customer_id,
        attempted_at,
        attempted_date,
        coalesce(attempt_number, attempt_sequence) as attempt_number,
        attempt_sequence,
        attempt_sequence = 1 as is_first_attempt,
        coalesce(previous_attempt_status = 'failed', false) as is_retry,
        status,
        is_succeeded,
        status = 'failed' as is_failed,
        failure_code,
        method,
        gateway,
        amount,
        currency,
        usd_per_unit,
        amount_usd
    from sequenced

)

select * from final
