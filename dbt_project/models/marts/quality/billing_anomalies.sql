{#- One row per (anomaly_type, document): invoices and payments that break the
    billing policy (config/billing_policy.yml, passed as vars). Each type is
    checked per document (an invoice, or a payment for payment-level
    currency mismatches), never per line, so an invoice with several wrong
    lines is one anomaly. Recomputed amounts are rounded half-up to the
    currency's minor unit, as the generator and the contract do, so a
    document whose numbers are consistent raises nothing. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

invoice_lines as (

    select * from {{ ref('fct_invoice_lines') }}

),

payments as (

    select * from {{ ref('fct_payments') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

prices as (

    select * from {{ ref('stg_billing__products') }}

),

subscription_events as (

    select * from {{ ref('stg_billing__subscription_events') }}

),

proration_lines as (

    select * from {{ ref('int_anomaly_proration_lines') }}

),

billing_periods as (

    select * from {{ ref('int_anomaly_billing_periods') }}

),

-- every line with its invoice's currency, reason and the customer's tax rate
-- and loyalty date; absent discount / tax count as zero in the sums
lines as (

    select
        invoice_lines.line_id,
        invoice_lines.invoice_id,
        invoice_lines.product_id,
        invoice_lines.is_proration,
        invoice_lines.period_start,
        invoice_lines.quantity,
        invoice_lines.unit_amount,
        invoice_lines.amount,
        coalesce(invoice_lines.discount_amount, 0) as discount_amount,
        coalesce(invoice_lines.tax_amount, 0) as tax_amount,
        invoices.currency,
        invoices.billing_reason,
        customers.tax_rate as country_tax_rate,
        {{ dbt.dateadd('month', var('loyalty_after_months'), 'customers.first_subscription_at') }}
            as loyalty_due_at,
        invoices.billing_reason in ('subscription_create', 'subscription_cycle')
        and not invoice_lines.is_proration as is_recurring_charge
    from invoice_lines
    inner join invoices
        on invoice_lines.invoice_id = invoices.invoice_id
    left join customers
        on invoices.customer_id = customers.customer_id

),

line_checks as (

    select
        lines.*,
        {{ round_to_minor_unit('(lines.amount - lines.discount_amount) * lines.country_tax_rate', 'lines.currency') }}
            as expected_tax_amount,
        case
            when lines.period_start >= lines.loyalty_due_at
                then {{ round_to_minor_unit('lines.amount * ' ~ var('loyalty_discount_rate'), 'lines.currency') }}
            else 0
        end as expected_discount_amount,
        prices.unit_amount as book_unit_amount
    from lines
    left join prices
        on {{ price_book_join('prices', 'lines.product_id', 'lines.currency', 'lines.period_start') }}

),

invoice_line_sums as (

    select
        invoice_id,
        sum(amount) as line_subtotal,
        sum(discount_amount) as line_discount,
        sum(tax_amount) as line_tax,
        sum(expected_tax_amount) as expected_tax,
        sum(case when tax_amount <> expected_tax_amount then 1 else 0 end) as wrong_tax_lines,
        sum(case when is_recurring_charge then discount_amount else 0 end) as recurring_discount,
        sum(case when is_recurring_charge then expected_discount_amount else 0 end) as expected_recurring_discount,
        sum(
            case when is_recurring_charge and discount_amount <> expected_discount_amount then 1 else 0 end
        ) as wrong_discount_lines,
        sum(
            case
                when is_recurring_charge and unit_amount <> book_unit_amount then amount else 0
            end
        ) as mispriced_amount,
        sum(
            case
                when is_recurring_charge and unit_amount <> book_unit_amount
                    then {{ round_to_minor_unit('book_unit_amount * quantity', 'currency') }}
                else 0
            end
        ) as book_priced_amount,
        sum(
            case when is_recurring_charge and unit_amount <> book_unit_amount then 1 else 0 end
        ) as mispriced_lines
    from line_checks
    group by invoice_id

),

checked_invoices as (

    select
        invoices.invoice_id,
        invoices.customer_id,
        invoices.subscription_id,
        invoices.period_start,
        invoices.issued_at,
        invoices.currency,
        invoices.usd_per_unit,
        invoices.subtotal_amount,
        invoices.discount_amount,
        invoices.tax_amount,
        invoices.total_amount,
        invoices.total_usd,
        customers.currency as customer_currency,
        sums.line_subtotal,
        sums.line_discount,
        sums.line_tax,
        sums.line_subtotal - sums.line_discount + sums.line_tax as line_total,
        sums.expected_tax,
        sums.wrong_tax_lines,
        sums.recurring_discount,
        sums.expected_recurring_discount,
        sums.wrong_discount_lines,
        sums.mispriced_amount,
        sums.book_priced_amount,
        sums.mispriced_lines
    from invoices
    inner join invoice_line_sums as sums
        on invoices.invoice_id = sums.invoice_id
    left join customers
        on invoices.customer_id = customers.customer_id

),

-- total_mismatch: the header disagrees with its lines (expected / actual: the total)
total_mismatch as (

    select
        'total_mismatch' as anomaly_type,
        invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        customer_id,
        subscription_id,
        period_start,
        issued_at as detected_at,
        currency,
        usd_per_unit,
        line_total as expected_amount,
        total_amount as actual_amount,
        cast(null as {{ dbt.type_string() }}) as expected_code,
        cast(null as {{ dbt.type_string() }}) as actual_code,
        case
            when subtotal_amount <> line_subtotal then 'subtotal_off'
            when discount_amount <> line_discount then 'discount_off'
            when tax_amount <> line_tax then 'tax_off'
            else 'total_off'
        end as detail
    from checked_invoices
    where
        subtotal_amount <> line_subtotal
        or discount_amount <> line_discount
        or tax_amount <> line_tax
        or total_amount <> line_total

),

-- tax_error: a line's tax is not the country rate on its net amount (expected / actual: invoice tax)
tax_error as (

    select
        'tax_error' as anomaly_type,
        invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        customer_id,
        subscription_id,
        period_start,
        issued_at as detected_at,
        currency,
        usd_per_unit,
        expected_tax as expected_amount,
        line_tax as actual_amount,
        cast(null as {{ dbt.type_string() }}) as expected_code,
        cast(null as {{ dbt.type_string() }}) as actual_code,
        case when line_tax = 0 then 'tax_omitted' else 'tax_amount_wrong' end as detail
    from checked_invoices
    where wrong_tax_lines > 0

),

-- price_mismatch: recurring lines not at the book price (expected / actual: those lines' amounts)
price_mismatch as (

    select
        'price_mismatch' as anomaly_type,
        invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        customer_id,
        subscription_id,
        period_start,
        issued_at as detected_at,
        currency,
        usd_per_unit,
        book_priced_amount as expected_amount,
        mispriced_amount as actual_amount,
        cast(null as {{ dbt.type_string() }}) as expected_code,
        cast(null as {{ dbt.type_string() }}) as actual_code,
        'unit_price_differs_from_price_book' as detail
    from checked_invoices
    where mispriced_lines > 0

),

-- discount_error: the loyalty discount of recurring lines (expected / actual: their discount)
discount_error as (

    select
        'discount_error' as anomaly_type,
        invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        customer_id,
        subscription_id,
        period_start,
        issued_at as detected_at,
        currency,
        usd_per_unit,
        expected_recurring_discount as expected_amount,
        recurring_discount as actual_amount,
        cast(null as {{ dbt.type_string() }}) as expected_code,
        cast(null as {{ dbt.type_string() }}) as actual_code,
        case
            when expected_recurring_discount = 0 then 'given_when_not_due'
            when recurring_discount = 0 then 'missing_when_due'
            else 'wrong_rate'
        end as detail
    from checked_invoices
    where wrong_discount_lines > 0

),

-- currency_mismatch on an invoice: billed in another currency than the customer's
invoice_currency_mismatch as (

    select
        'currency_mismatch' as anomaly_type,
        invoices.invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        invoices.customer_id,
        invoices.subscription_id,
        invoices.period_start,
        invoices.issued_at as detected_at,
        invoices.currency,
        invoices.usd_per_unit,
        invoices.total_amount as expected_amount,
        cast(0 as decimal(18, 4)) as actual_amount,
        customers.currency as expected_code,
        invoices.currency as actual_code,
        'invoice_currency' as detail
    from invoices
    inner join customers
        on invoices.customer_id = customers.customer_id
    where invoices.currency <> customers.currency

),

-- currency_mismatch on a payment: a payment of a correctly invoiced document
-- labelled in another currency (the payments of a wrong-currency invoice
-- follow the invoice and are not separate anomalies)
payment_currency_mismatch as (

    select
        'currency_mismatch' as anomaly_type,
        payments.invoice_id,
        payments.payment_id,
        payments.customer_id,
        invoices.subscription_id,
        invoices.period_start,
        payments.attempted_at as detected_at,
        invoices.currency,
        invoices.usd_per_unit,
        payments.amount as expected_amount,
        cast(0 as decimal(18, 4)) as actual_amount,
        invoices.currency as expected_code,
        payments.currency as actual_code,
        'payment_currency' as detail
    from payments
    inner join invoices
        on payments.invoice_id = invoices.invoice_id
    inner join customers
        on invoices.customer_id = customers.customer_id
    where
        invoices.currency = customers.currency
        and payments.currency <> invoices.currency

),

-- duplicate_charge on a payment: a succeeded payment that takes the paid sum
-- (invoice currency, attempt order) above the invoice total
paid_running as (

    select
        payments.payment_id,
        payments.invoice_id,
        payments.attempted_at,
        sum(payments.amount) over (
            partition by payments.invoice_id
            order by payments.attempted_at, payments.payment_id
            rows between unbounded preceding and current row
        ) as paid_so_far
    from payments
    where payments.is_succeeded

),

payment_duplicate_charge as (

    select
        'duplicate_charge' as anomaly_type,
        invoices.invoice_id,
        paid_running.payment_id,
        invoices.customer_id,
        invoices.subscription_id,
        invoices.period_start,
        paid_running.attempted_at as detected_at,
        invoices.currency,
        invoices.usd_per_unit,
        invoices.total_amount as expected_amount,
        paid_running.paid_so_far as actual_amount,
        cast(null as {{ dbt.type_string() }}) as expected_code,
        cast(null as {{ dbt.type_string() }}) as actual_code,
        'duplicate_payment' as detail
    from paid_running
    inner join invoices
        on paid_running.invoice_id = invoices.invoice_id
    where paid_running.paid_so_far > invoices.total_amount

),

-- duplicate_charge on an invoice: a later cycle invoice for a subscription and
-- period already invoiced (expected / actual: the number of invoices, 1 / n)
cycle_invoices as (

    select
        invoice_id,
        customer_id,
        subscription_id,
        period_start,
        issued_at,
        currency,
        usd_per_unit,
        total_amount,
        first_value(invoice_id) over (
            partition by customer_id, subscription_id, period_start order by issued_at, invoice_id
        ) as original_invoice_id,
        row_number() over (
            partition by customer_id, subscription_id, period_start order by issued_at, invoice_id
        ) as copy_number
    from invoices
    where billing_reason = 'subscription_cycle'

),

invoice_duplicate_charge as (

    select
        'duplicate_charge' as anomaly_type,
        invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        customer_id,
        subscription_id,
        period_start,
        issued_at as detected_at,
        currency,
        usd_per_unit,
        total_amount as expected_amount,
        cast(0 as decimal(18, 4)) as actual_amount,
        '1' as expected_code,
        cast(copy_number as {{ dbt.type_string() }}) as actual_code,
        'duplicate_invoice of ' || original_invoice_id as detail
    from cycle_invoices
    where copy_number > 1

),

-- invoice_after_cancellation: a cycle invoice whose period starts when the
-- subscription is over: the last start or end event at or before the period
-- start is an end (at one instant, ends apply before starts, as in
-- int_subscription_states; expected / actual: 0 / the invoice total)
cycle_invoice_states as (

    select
        invoices.invoice_id,
        invoices.customer_id,
        invoices.subscription_id,
        invoices.period_start,
        invoices.issued_at,
        invoices.currency,
        invoices.usd_per_unit,
        invoices.total_amount,
        subscription_events.event_type,
        subscription_events.is_end,
        row_number() over (
            partition by invoices.invoice_id
            order by
                subscription_events.effective_at desc,
                subscription_events.is_start desc,
                subscription_events.event_id desc
        ) as recency
    from invoices
    inner join subscription_events
        on
            invoices.subscription_id = subscription_events.subscription_id
            and invoices.period_start >= subscription_events.effective_at
            and (subscription_events.is_start or subscription_events.is_end)
    where invoices.billing_reason = 'subscription_cycle'

),

invoice_after_cancellation as (

    select
        'invoice_after_cancellation' as anomaly_type,
        invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        customer_id,
        subscription_id,
        period_start,
        issued_at as detected_at,
        currency,
        usd_per_unit,
        cast(0 as decimal(18, 4)) as expected_amount,
        total_amount as actual_amount,
        cast(null as {{ dbt.type_string() }}) as expected_code,
        cast(null as {{ dbt.type_string() }}) as actual_code,
        'cycle_invoice_after_' || event_type as detail
    from cycle_invoice_states
    where recency = 1 and is_end

),

-- amount_spike: a create / cycle invoice on which some recurring line's
-- quantity is above that product's quantity on the subscription's previous
-- create / cycle invoice, with no subscription event since the previous
-- period start (a real seat or plan change is always an event). expected /
-- actual: the previous invoice's total / this invoice's total
recurring_invoices as (

    select
        invoice_id,
        subscription_id,
        period_start,
        total_amount,
        lag(period_start) over (
            partition by subscription_id order by period_start, issued_at, invoice_id
        ) as previous_period_start,
        lag(total_amount) over (
            partition by subscription_id order by period_start, issued_at, invoice_id
        ) as previous_total_amount
    from invoices
    -- an invoice without a subscription has no events to explain a change: not judged
    where
        billing_reason in ('subscription_create', 'subscription_cycle')
        and subscription_id is not null

),

recurring_line_quantities as (

    select
        recurring_invoices.invoice_id,
        recurring_invoices.subscription_id,
        recurring_invoices.period_start,
        invoice_lines.product_id,
        invoice_lines.quantity,
        lag(invoice_lines.quantity) over (
            partition by recurring_invoices.subscription_id, invoice_lines.product_id
            order by recurring_invoices.period_start, recurring_invoices.invoice_id
        ) as previous_quantity
    from recurring_invoices
    inner join invoice_lines
        on recurring_invoices.invoice_id = invoice_lines.invoice_id
    where not invoice_lines.is_proration

),

spiked_invoices as (

    select distinct recurring_invoices.invoice_id
    from recurring_line_quantities
    inner join recurring_invoices
        on recurring_line_quantities.invoice_id = recurring_invoices.invoice_id
    where
        recurring_line_quantities.quantity > recurring_line_quantities.previous_quantity
        and not exists (
            select 1
            from subscription_events
            where
                subscription_events.subscription_id = recurring_invoices.subscription_id
                and subscription_events.effective_at > recurring_invoices.previous_period_start
                and subscription_events.effective_at <= recurring_invoices.period_start
        )

),

amount_spike as (

    select
        'amount_spike' as anomaly_type,
        invoices.invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        invoices.customer_id,
        invoices.subscription_id,
        invoices.period_start,
        invoices.issued_at as detected_at,
        invoices.currency,
        invoices.usd_per_unit,
        recurring_invoices.previous_total_amount as expected_amount,
        invoices.total_amount as actual_amount,
        cast(null as {{ dbt.type_string() }}) as expected_code,
        cast(null as {{ dbt.type_string() }}) as actual_code,
        'quantity_above_previous_invoice_without_event' as detail
    from spiked_invoices
    inner join invoices
        on spiked_invoices.invoice_id = invoices.invoice_id
    inner join recurring_invoices
        on spiked_invoices.invoice_id = recurring_invoices.invoice_id

),

-- proration_error: a proration line whose amount is not the policy's
-- (int_anomaly_proration_lines; a line it cannot price is not judged).
-- expected / actual: the invoice's proration lines as the policy prorates
-- them / as billed. detail: full_period_not_prorated when every wrong line
-- bills the whole unprorated difference, else prorated_amount_off
proration_invoices as (

    select
        invoice_id,
        sum(coalesce(expected_amount, billed_amount)) as expected_amount,
        sum(billed_amount) as billed_amount,
        sum(case when billed_amount <> expected_amount then 1 else 0 end) as wrong_lines,
        sum(
            case when billed_amount <> expected_amount and billed_amount <> full_period_amount then 1 else 0 end
        ) as wrong_lines_not_full_period
    from proration_lines
    group by invoice_id

),

proration_error as (

    select
        'proration_error' as anomaly_type,
        invoices.invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        invoices.customer_id,
        invoices.subscription_id,
        invoices.period_start,
        invoices.issued_at as detected_at,
        invoices.currency,
        invoices.usd_per_unit,
        proration_invoices.expected_amount,
        proration_invoices.billed_amount as actual_amount,
        cast(null as {{ dbt.type_string() }}) as expected_code,
        cast(null as {{ dbt.type_string() }}) as actual_code,
        case
            when proration_invoices.wrong_lines_not_full_period = 0 then 'full_period_not_prorated'
            else 'prorated_amount_off'
        end as detail
    from proration_invoices
    inner join invoices
        on proration_invoices.invoice_id = invoices.invoice_id
    where proration_invoices.wrong_lines > 0

),

-- missed_invoice: a live billing period started by the data's as-of instant
-- (int_anomaly_billing_periods) with no create / cycle invoice for that
-- period start, other than a draft or a void: of the subscription, or of the
-- customer when the invoice names no subscription (the contract allows it).
-- No invoice, so the document is the period; expected / actual: the invoice
-- the policy expects (price book x the state at the period start, loyalty
-- discount, tax) / 0, in the customer's currency at the period start's rate
period_invoices as (

    select distinct
        subscription_id,
        customer_id,
        period_start
    from invoices
    where
        billing_reason in ('subscription_create', 'subscription_cycle')
        and status not in ('draft', 'void')

),

missed_invoice as (

    select
        'missed_invoice' as anomaly_type,
        cast(null as {{ dbt.type_string() }}) as invoice_id,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        billing_periods.customer_id,
        billing_periods.subscription_id,
        billing_periods.period_started_at as period_start,
        billing_periods.period_started_at as detected_at,
        billing_periods.currency,
        billing_periods.usd_per_unit,
        billing_periods.expected_total_amount as expected_amount,
        cast(0 as decimal(18, 4)) as actual_amount,
        cast(null as {{ dbt.type_string() }}) as expected_code,
        cast(null as {{ dbt.type_string() }}) as actual_code,
        case
            when billing_periods.period_started_at = billing_periods.life_started_at
                then 'first_period_of_' || billing_periods.life_start_event_type || '_not_invoiced'
            else 'renewal_not_invoiced'
        end as detail
    from billing_periods
    where not exists (
        select 1
        from period_invoices
        where
            period_invoices.period_start = billing_periods.period_started_at
            and (
                period_invoices.subscription_id = billing_periods.subscription_id
                or (
                    period_invoices.subscription_id is null
                    and period_invoices.customer_id = billing_periods.customer_id
                )
            )
    )

),

unioned as (

    select * from proration_error
    union all
    select * from missed_invoice
    union all
    select * from amount_spike
    union all
    select * from invoice_after_cancellation
    union all
    select * from payment_duplicate_charge
    union all
    select * from invoice_duplicate_charge
    union all
    select * from total_mismatch
    union all
    select * from tax_error
    union all
    select * from price_mismatch
    union all
    select * from discount_error
    union all
    select * from invoice_currency_mismatch
    union all
    select * from payment_currency_mismatch

),

{#- an invoice or payment anomaly by its documents; a missed invoice by its period -#}
{%- set anomaly_key = [
    "anomaly_type", "'|'",
    "coalesce(invoice_id, subscription_id || '@' || cast(period_start as " ~ dbt.type_string() ~ "), '')", "'|'",
    "coalesce(payment_id, '')"
] %}

final as (

    select
        {{ dbt.hash(dbt.concat(anomaly_key)) }} as anomaly_id,
        anomaly_type,
        {{ anomaly_severity('anomaly_type') }} as severity,
        invoice_id,
        payment_id,
        customer_id,
        subscription_id,
        period_start,
        coalesce(expected_code, {{ money_as_text('expected_amount', 'currency') }}) as expected,
        coalesce(actual_code, {{ money_as_text('actual_amount', 'currency') }}) as actual,
        {{ to_usd('abs(expected_amount - actual_amount)', 'usd_per_unit') }} as amount_at_stake_usd,
        detected_at,
        detail
    from unioned

)

select * from final
