{#- One row per invoice: amounts in the invoice currency and in USD (issue-date
    rate), status timestamps, the segment it is reported under
    (int_invoice_segments), payment and settlement outcomes as of the run, and
    the error flags of metrics.md (kpi_invoice_error_rate). -#}
with

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

segments as (

    select * from {{ ref('int_invoice_segments') }}

),

attempts as (

    select * from {{ ref('int_invoice_payment_attempts') }}

),

settlements as (

    select * from {{ ref('int_invoice_settlements') }}

),

credit_notes as (

    select * from {{ ref('stg_billing__credit_notes') }}

),

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

attempt_outcomes as (

    select
        invoice_id,
        count(*) as payment_attempts,
        sum(case when is_failed then 1 else 0 end) as failed_attempts,
        min(attempted_at) as first_attempt_at,
        max(case when is_first_attempt and is_failed then 1 else 0 end) = 1 as is_first_attempt_failed
    from attempts
    group by invoice_id

),

-- closed_at: the document (payment or credit note) that brought the balance
-- to zero; settled_at: the same instant when that document is a payment
settlement_outcomes as (

    select
        invoice_id,
        sum(case when settlement_type = 'payment' then amount else 0 end) as paid_amount,
        sum(case when settlement_type = 'credit_note' then amount else 0 end) as credited_amount,
        max(case when is_closing and settlement_type = 'payment' then applied_at end) as settled_at,
        max(case when is_closing then applied_at end) as closed_at
    from settlements
    group by invoice_id

),

-- metrics.md: an error credit note has reason billing_error or duplicate_charge
error_credit_notes as (

    select
        invoice_id,
        count(*) as error_credit_notes
    from credit_notes
    where reason in ('billing_error', 'duplicate_charge')
    group by invoice_id

),

-- metrics.md: an error ticket is linked to the invoice with one of these subcategories
error_tickets as (

    select
        invoice_id,
        count(*) as error_tickets
    from tickets
    where
        invoice_id is not null
        and subcategory in ('duplicate_charge', 'wrong_amount', 'missing_discount', 'wrong_tax')
    group by invoice_id

),

joined as (

    select
        invoices.invoice_id,
        invoices.invoice_number,
        invoices.customer_id,
        invoices.subscription_id,
        invoices.billing_reason,
        invoices.status,
        invoices.issued_at,
        invoices.issued_date,
        segments.issued_month,
        invoices.due_at,
        invoices.period_start,
        invoices.period_end,
        invoices.paid_at,
        invoices.voided_at,
        invoices.uncollectible_at,
        invoices.currency,
        invoices.usd_per_unit,
        invoices.subtotal_amount,
        invoices.discount_amount,
        invoices.tax_amount,
        invoices.total_amount,
        invoices.subtotal_usd,
        invoices.discount_usd,
        invoices.tax_usd,
        invoices.total_usd,
        segments.plan_product_id,
        segments.tier,
        segments.billing_period,
        segments.plan_source,
        segments.company_size,
        segments.region,
        segments.acquisition_channel,
        segments.tenure_months,
        segments.tenure_band,
        coalesce(attempt_outcomes.payment_attempts, 0) as payment_attempts,
        coalesce(attempt_outcomes.failed_attempts, 0) as failed_attempts,
        attempt_outcomes.first_attempt_at,
        coalesce(attempt_outcomes.is_first_attempt_failed, false) as is_first_attempt_failed,
        coalesce(settlement_outcomes.paid_amount, 0) as paid_amount,
        coalesce(settlement_outcomes.credited_amount, 0) as credited_amount,
        settlement_outcomes.settled_at,
        settlement_outcomes.closed_at,
        coalesce(error_credit_notes.error_credit_notes, 0) as error_credit_notes,
        coalesce(error_tickets.error_tickets, 0) as error_tickets
    from invoices
    left join segments
        on invoices.invoice_id = segments.invoice_id
    left join attempt_outcomes
        on invoices.invoice_id = attempt_outcomes.invoice_id
    left join settlement_outcomes
        on invoices.invoice_id = settlement_outcomes.invoice_id
    left join error_credit_notes
        on invoices.invoice_id = error_credit_notes.invoice_id
    left join error_tickets
        on invoices.invoice_id = error_tickets.invoice_id

),

outcomes as (

    select
        *,
        case
            when total_amount - paid_amount - credited_amount > 0
                then total_amount - paid_amount - credited_amount
            else 0
        end as unsettled_amount,
        -- a double on every adapter (macros/cross_db/doubles.sql)
        {{ round_double('cast(' ~ dbt.datediff('issued_at', 'settled_at', 'second') ~ ' as double) / 86400', 4) }}
            as days_to_payment,
        error_credit_notes > 0 as has_error_credit_note,
        error_tickets > 0 as has_error_ticket,
        error_credit_notes > 0 or error_tickets > 0 as is_error_invoice
    from joined

),

final as (

    select
        *,
        {{ to_usd('unsettled_amount') }} as unsettled_usd
    from outcomes

)

select * from final
