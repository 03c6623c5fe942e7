-- The plain-SQL baseline of the scale benchmark (benchmarks/scale.py): the
-- core KPIs for segment `all`, computed straight from the landing files by
-- one DuckDB script, with no warehouse, no dbt and no orchestration. The
-- benchmark times it on the same world as the pipeline, so the pipeline's
-- overhead is a ratio measured in one run.
--
--     duckdb -cmd "set variable landing = '/path/to/landing'" < benchmarks/baseline_kpis.sql
--
-- The last statement returns one row per month:
--   invoices_issued, invoices_with_error, error_rate_per_100   (marts.kpi_invoice_error_rate)
--   credit_sales_usd, ar_end_usd, dso_days                     (marts.kpi_dso)
--   customers_start, churned, logo_churn_rate                  (marts.kpi_churn)
-- by the definitions of shared/spec/metrics.md. To be a fair comparison it
-- must give the marts' numbers, so it applies the pipeline's rules:
-- - Rows: the contract's row rules (required values, types, enums, currency
--   codes, non-negative money) drop the rows ingestion quarantines.
-- - Versions: per key the newest row (later `updated_at`, a row with one
--   beating a row without, then the later batch file in path order).
-- - USD: a document's rate is its date's, else the latest earlier one (USD
--   is 1), 4 decimals per document; a balance is computed in the invoice
--   currency and converted at the invoice's rate.
-- Not replicated, because a generated world never exercises them (the
-- benchmark's test would show it if one did): the loader's stricter text
-- patterns and minor-unit rounding check, quarantining every row of a key
-- repeated within one batch, skipping a re-delivered file by its content
-- hash (it only matters when that file carries versions without
-- `updated_at` that a later batch superseded), and rejecting a whole batch
-- on a failed expectation (a pipeline run with a rejected batch fails). It
-- expects every contract column in at least one file of each source it
-- reads, as the generator writes them.

set TimeZone = 'UTC';

-- Every batch file of a source, any of the contract's formats, as text.
-- JSON columns are named (as text) so that a value that is not of its
-- column's type stays readable and is dropped by the row rules below.
create or replace temp macro landed(source_name, json_columns) as table
    select *
    from
        read_csv(
            getvariable('landing') || '/' || source_name || '/*.csv*',
            all_varchar = true, header = true, delim = ',', quote = '"', escape = '"',
            union_by_name = true, allow_empty = true, filename = true
        )
    union all by name
    select *
    from
        read_json(
            getvariable('landing') || '/' || source_name || '/*.jsonl*',
            format = 'newline_delimited', columns = json_columns, allow_empty = true, filename = true
        )
    union all by name
    select cast(columns(*) as varchar)
    from
        read_parquet(
            getvariable('landing') || '/' || source_name || '/*.parquet',
            union_by_name = true, allow_empty = true, filename = true
        );

-- Blank is missing; timestamps are UTC (no offset means UTC); money is exact.
create or replace temp macro present(value) as nullif(trim(value), '');
create or replace temp macro utc(value) as cast(try_cast(value as timestamptz) as timestamp);
create or replace temp macro money(value) as try_cast(value as decimal(18, 4));
-- An optional value that was delivered but does not parse.
create or replace temp macro unparsed(value, typed) as present(value) is not null and typed is null;
create or replace temp macro is_currency(value) as coalesce(regexp_full_match(value, '[A-Z]{3}'), false);
create or replace temp macro to_usd(amount, rate) as cast(round(amount * rate, 4) as decimal(18, 4));

-- Sources: valid rows, newest version per key --------------------------------

create or replace temp table fx_rates as
with

delivered as (

    select
        filename,
        try_cast(rate_date as date) as rate_date,
        currency,
        try_cast(usd_per_unit as double) as usd_per_unit
    from landed('fx_rates', { rate_date: 'varchar', currency: 'varchar', usd_per_unit: 'varchar' })

),

latest as (

    select *
    from delivered
    where rate_date is not null and is_currency(currency) and usd_per_unit >= 0
    qualify row_number() over (partition by rate_date, currency order by filename desc) = 1

)

-- each rate holds until the next one of its currency
select
    rate_date as valid_from,
    currency,
    usd_per_unit,
    lead(rate_date) over (partition by currency order by rate_date) as valid_to
from latest;

create or replace temp table invoices as
with

delivered as (

    select
        *,
        trim(invoice_id) as key_id
    from landed('invoices', {
        invoice_id: 'varchar', customer_id: 'varchar', subscription_id: 'varchar',
        invoice_number: 'varchar', issued_at: 'varchar', due_at: 'varchar',
        period_start: 'varchar', period_end: 'varchar', currency: 'varchar',
        subtotal: 'varchar', discount_amount: 'varchar', tax_amount: 'varchar', total: 'varchar',
        status: 'varchar', billing_reason: 'varchar', paid_at: 'varchar', voided_at: 'varchar',
        uncollectible_at: 'varchar', updated_at: 'varchar'
    })

),

latest as (

    select
        key_id as invoice_id,
        status,
        currency,
        utc(issued_at) as issued_at,
        money(total) as total_amount,
        utc(voided_at) as voided_at,
        utc(uncollectible_at) as uncollectible_at,
        utc(updated_at) as updated_at
    from delivered
    where
        present(invoice_id) is not null
        and present(customer_id) is not null
        and present(invoice_number) is not null
        and utc(issued_at) is not null
        and utc(due_at) is not null
        and utc(period_start) is not null
        and utc(period_end) is not null
        and is_currency(currency)
        and money(subtotal) >= 0
        and money(discount_amount) >= 0
        and money(tax_amount) >= 0
        and money(total) >= 0
        and status in ('draft', 'open', 'paid', 'void', 'uncollectible')
        and billing_reason in ('subscription_create', 'subscription_cycle', 'subscription_update', 'manual')
        and not unparsed(paid_at, utc(paid_at))
        and not unparsed(voided_at, utc(voided_at))
        and not unparsed(uncollectible_at, utc(uncollectible_at))
        and not unparsed(updated_at, utc(updated_at))
    qualify row_number() over (
        partition by key_id order by utc(updated_at) desc nulls last, filename desc
    ) = 1

)

select
    latest.*,
    case when latest.currency = 'USD' then 1.0 else fx_rates.usd_per_unit end as usd_per_unit
from latest
left join fx_rates
    on
        latest.currency = fx_rates.currency
        and cast(latest.issued_at as date) >= fx_rates.valid_from
        and (fx_rates.valid_to is null or cast(latest.issued_at as date) < fx_rates.valid_to);

create or replace temp table payments as
with

delivered as (

    select
        *,
        trim(payment_id) as key_id
    from landed('payments', {
        payment_id: 'varchar', invoice_id: 'varchar', customer_id: 'varchar', attempted_at: 'varchar',
        amount: 'varchar', currency: 'varchar', status: 'varchar', failure_code: 'varchar',
        method: 'varchar', gateway: 'varchar', attempt_number: 'varchar'
    })

)

select
    key_id as payment_id,
    invoice_id,
    utc(attempted_at) as attempted_at,
    money(amount) as amount,
    status
from delivered
where
    present(payment_id) is not null
    and present(invoice_id) is not null
    and present(customer_id) is not null
    and utc(attempted_at) is not null
    and money(amount) >= 0
    and is_currency(currency)
    and status in ('succeeded', 'failed', 'pending')
    and (present(method) is null or method in ('card', 'ach', 'sepa_debit', 'bank_transfer', 'paypal'))
    and not unparsed(attempt_number, try_cast(attempt_number as bigint))
qualify row_number() over (partition by key_id order by filename desc) = 1;

create or replace temp table credit_notes as
with

delivered as (

    select
        *,
        trim(credit_note_id) as key_id
    from landed('credit_notes', {
        credit_note_id: 'varchar', invoice_id: 'varchar', issued_at: 'varchar', amount: 'varchar',
        currency: 'varchar', kind: 'varchar', reason: 'varchar'
    })

)

select
    key_id as credit_note_id,
    invoice_id,
    utc(issued_at) as issued_at,
    money(amount) as amount,
    reason
from delivered
where
    present(credit_note_id) is not null
    and present(invoice_id) is not null
    and utc(issued_at) is not null
    and money(amount) >= 0
    and is_currency(currency)
    and kind in ('credit', 'refund')
    and reason in ('billing_error', 'duplicate_charge', 'order_change', 'product_unsatisfactory', 'goodwill', 'other')
qualify row_number() over (partition by key_id order by filename desc) = 1;

create or replace temp table support_tickets as
with

delivered as (

    select
        *,
        trim(ticket_id) as key_id
    from landed('support_tickets', {
        ticket_id: 'varchar', customer_id: 'varchar', created_at: 'varchar', solved_at: 'varchar',
        category: 'varchar', subcategory: 'varchar', invoice_id: 'varchar', priority: 'varchar',
        status: 'varchar', channel: 'varchar', satisfaction: 'varchar'
    })

)

select
    key_id as ticket_id,
    invoice_id,
    subcategory
from delivered
where
    present(ticket_id) is not null
    and present(customer_id) is not null
    and utc(created_at) is not null
    and not unparsed(solved_at, utc(solved_at))
    and category in ('billing', 'technical', 'account', 'other')
    and (
        present(subcategory) is null
        or subcategory in (
            'duplicate_charge', 'wrong_amount', 'missing_discount', 'wrong_tax', 'late_invoice',
            'confusing_invoice', 'refund_request', 'payment_failed', 'cancellation', 'other'
        )
    )
    and present(status) is not null
    and (present(satisfaction) is null or satisfaction in ('good', 'bad'))
qualify row_number() over (partition by key_id order by filename desc) = 1;

create or replace temp table subscription_events as
with

delivered as (

    select
        *,
        trim(event_id) as key_id
    from landed('subscription_events', {
        event_id: 'varchar', subscription_id: 'varchar', customer_id: 'varchar', event_type: 'varchar',
        product_id: 'varchar', quantity: 'varchar', effective_at: 'varchar', reason: 'varchar'
    })

)

select
    key_id as event_id,
    subscription_id,
    customer_id,
    event_type,
    utc(effective_at) as effective_at
from delivered
where
    present(event_id) is not null
    and present(subscription_id) is not null
    and present(customer_id) is not null
    and event_type in (
        'created', 'plan_changed', 'quantity_changed', 'addon_added', 'addon_removed',
        'cancelled', 'lapsed', 'reactivated'
    )
    and not unparsed(quantity, try_cast(quantity as bigint))
    and utc(effective_at) is not null
qualify row_number() over (partition by key_id order by filename desc) = 1;

-- Invoice error rate and DSO ------------------------------------------------

-- From the month of the first billing activity (an invoice issued, a payment
-- attempted, a credit note issued) to the month of the latest.
create or replace temp table invoice_months as
with

activity as (

    select issued_at as occurred_at
    from invoices
    where status <> 'draft'

    union all

    select attempted_at as occurred_at
    from payments

    union all

    select issued_at as occurred_at
    from credit_notes

),

months as (

    select
        unnest(generate_series(
            date_trunc('month', min(occurred_at)), date_trunc('month', max(occurred_at)), interval 1 month
        )) as month_start_at
    from activity

)

select
    cast(month_start_at as date) as month,
    cast(month_start_at + interval 1 month as timestamp) as next_month_start_at,
    datediff('day', month_start_at, month_start_at + interval 1 month) as days_in_month
from months;

create or replace temp table error_rate as
with

error_invoice_ids as (

    select invoice_id
    from credit_notes
    where reason in ('billing_error', 'duplicate_charge')

    union

    select invoice_id
    from support_tickets
    where subcategory in ('duplicate_charge', 'wrong_amount', 'missing_discount', 'wrong_tax')

),

issued as (

    select
        cast(date_trunc('month', invoices.issued_at) as date) as month,
        cast(count(*) as integer) as invoices_issued,
        cast(count(error_invoice_ids.invoice_id) as integer) as invoices_with_error
    from invoices
    left join error_invoice_ids
        on invoices.invoice_id = error_invoice_ids.invoice_id
    where invoices.status <> 'draft'
    group by month

)

select
    invoice_months.month,
    coalesce(issued.invoices_issued, 0) as invoices_issued,
    coalesce(issued.invoices_with_error, 0) as invoices_with_error,
    case
        when issued.invoices_issued > 0 then round(100.0 * issued.invoices_with_error / issued.invoices_issued, 2)
    end as error_rate_per_100
from invoice_months
left join issued
    on invoice_months.month = issued.month;

create or replace temp table dso as
with

credit_sales as (

    select
        cast(date_trunc('month', issued_at) as date) as month,
        sum(to_usd(total_amount, usd_per_unit)) as credit_sales_usd
    from invoices
    where status not in ('draft', 'void')
    group by month

),

-- what settles an invoice: succeeded payments and credit notes, at face value
settlements as (

    select
        invoice_id,
        attempted_at as applied_at,
        amount
    from payments
    where status = 'succeeded'

    union all

    select
        invoice_id,
        issued_at as applied_at,
        amount
    from credit_notes

),

-- a void / uncollectible status without its timestamp counts from when the
-- version was written, else from issue
receivables as (

    select
        invoice_id,
        issued_at,
        total_amount,
        usd_per_unit,
        coalesce(voided_at, case when status = 'void' then coalesce(updated_at, issued_at) end) as voided_at,
        coalesce(
            uncollectible_at, case when status = 'uncollectible' then coalesce(updated_at, issued_at) end
        ) as uncollectible_at
    from invoices
    where status <> 'draft'

),

-- settled through each instant (documents of one instant together)
running_settlements as (

    select
        invoice_id,
        applied_at,
        sum(amount) over (partition by invoice_id order by applied_at) as settled_through
    from settlements

),

-- settlements only lower a balance: once settled, an invoice stays settled
closings as (

    select
        receivables.invoice_id,
        min(running_settlements.applied_at) as closed_at
    from receivables
    inner join running_settlements
        on receivables.invoice_id = running_settlements.invoice_id
    where running_settlements.settled_through >= receivables.total_amount
    group by receivables.invoice_id

),

open_month_ends as (

    select
        receivables.invoice_id,
        receivables.total_amount,
        receivables.usd_per_unit,
        invoice_months.month,
        invoice_months.next_month_start_at
    from receivables
    inner join invoice_months
        on receivables.issued_at < invoice_months.next_month_start_at
    left join closings
        on receivables.invoice_id = closings.invoice_id
    where
        (closings.closed_at is null or closings.closed_at >= invoice_months.next_month_start_at)
        and (receivables.voided_at is null or receivables.voided_at >= invoice_months.next_month_start_at)
        and (
            receivables.uncollectible_at is null
            or receivables.uncollectible_at >= invoice_months.next_month_start_at
        )

),

balances as (

    select
        open_month_ends.invoice_id,
        open_month_ends.month,
        open_month_ends.usd_per_unit,
        open_month_ends.total_amount - coalesce(sum(settlements.amount), 0) as balance_amount
    from open_month_ends
    left join settlements
        on
            open_month_ends.invoice_id = settlements.invoice_id
            and open_month_ends.next_month_start_at > settlements.applied_at
    group by
        open_month_ends.invoice_id,
        open_month_ends.month,
        open_month_ends.usd_per_unit,
        open_month_ends.total_amount

),

receivable_totals as (

    select
        month,
        sum(to_usd(balance_amount, usd_per_unit)) as ar_end_usd
    from balances
    where balance_amount > 0
    group by month

),

filled as (

    select
        invoice_months.month,
        invoice_months.days_in_month,
        coalesce(credit_sales.credit_sales_usd, 0) as credit_sales_usd,
        coalesce(receivable_totals.ar_end_usd, 0) as ar_end_usd
    from invoice_months
    left join credit_sales
        on invoice_months.month = credit_sales.month
    left join receivable_totals
        on invoice_months.month = receivable_totals.month

)

select
    month,
    credit_sales_usd,
    ar_end_usd,
    case
        when credit_sales_usd > 0 then round(ar_end_usd / credit_sales_usd * days_in_month, 2)
    end as dso_days
from filled;

-- Logo churn ----------------------------------------------------------------

-- From the month of the first subscription start to the month of the latest
-- fact (an event or an invoice).
create or replace temp table reporting_months as
with

first_start as (

    select min(effective_at) as first_started_at
    from subscription_events
    where event_type in ('created', 'reactivated')

),

latest_event as (

    select max(effective_at) as latest_at
    from subscription_events

),

latest_invoice as (

    select max(issued_at) as latest_at
    from invoices

),

months as (

    select
        unnest(generate_series(
            date_trunc('month', first_start.first_started_at),
            date_trunc(
                'month',
                case
                    when latest_invoice.latest_at > latest_event.latest_at then latest_invoice.latest_at
                    else latest_event.latest_at
                end
            ),
            interval 1 month
        )) as month_start_at
    from first_start
    cross join latest_event
    cross join latest_invoice

)

select
    cast(month_start_at as date) as month,
    cast(month_start_at as timestamp) as month_start_at,
    cast(month_start_at + interval 1 month as timestamp) as next_month_start_at
from months;

create or replace temp table churn as
with

-- A subscription's start and end events in order; at one instant ends apply
-- before starts.
lifecycle as (

    select
        customer_id,
        event_type in ('created', 'reactivated') as is_start,
        effective_at,
        lead(effective_at) over (
            partition by subscription_id
            order by effective_at, case when event_type in ('cancelled', 'lapsed') then 1 else 2 end, event_id
        ) as next_change_at
    from subscription_events
    where event_type in ('created', 'reactivated', 'cancelled', 'lapsed')

),

-- live from a start until the subscription's next start or end
live_spans as (

    select
        customer_id,
        effective_at as live_from,
        next_change_at as live_until
    from lifecycle
    where is_start

),

-- customers active at each month's first instant, and at the next month's
active_at_start as (

    select distinct
        reporting_months.month,
        live_spans.customer_id
    from reporting_months
    inner join live_spans
        on
            reporting_months.month_start_at >= live_spans.live_from
            and (live_spans.live_until is null or reporting_months.month_start_at < live_spans.live_until)

),

active_at_end as (

    select distinct
        reporting_months.month,
        live_spans.customer_id
    from reporting_months
    inner join live_spans
        on
            reporting_months.next_month_start_at >= live_spans.live_from
            and (live_spans.live_until is null or reporting_months.next_month_start_at < live_spans.live_until)

),

counted as (

    select
        active_at_start.month,
        count(*) as customers_start,
        count(*) filter (where active_at_end.customer_id is null) as churned
    from active_at_start
    left join active_at_end
        on
            active_at_start.month = active_at_end.month
            and active_at_start.customer_id = active_at_end.customer_id
    group by active_at_start.month

)

select
    reporting_months.month,
    coalesce(counted.customers_start, 0) as customers_start,
    coalesce(counted.churned, 0) as churned,
    counted.churned * 1.0 / nullif(counted.customers_start, 0) as logo_churn_rate
from reporting_months
left join counted
    on reporting_months.month = counted.month;

-- The KPIs, one row per month ---------------------------------------------------

select
    coalesce(error_rate.month, churn.month) as month,
    error_rate.invoices_issued,
    error_rate.invoices_with_error,
    error_rate.error_rate_per_100,
    dso.credit_sales_usd,
    dso.ar_end_usd,
    dso.dso_days,
    churn.customers_start,
    churn.churned,
    churn.logo_churn_rate
from error_rate
inner join dso
    on error_rate.month = dso.month
full outer join churn
    on error_rate.month = churn.month
order by month;
