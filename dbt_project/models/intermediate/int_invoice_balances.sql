{#- One row per invoice and month end at which the invoice is open (metrics.md,
    kpi_dso): issued at or before the month's last instant, not draft, not
    voided or marked uncollectible at or before it, and with
    total - succeeded payments - credit notes (each at or before it) above
    zero. "At or before the last instant" is "before the next month's first
    instant". The balance is computed in the invoice currency and converted
    at the invoice's own rate, so a fully paid invoice leaves no FX residue. -#}
with

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

settlements as (

    select * from {{ ref('int_invoice_settlements') }}

),

months as (

    select * from {{ ref('int_invoice_months') }}

),

-- a void / uncollectible status without its timestamp leaves receivables
-- when that version was written (updated_at), else from issue
receivables as (

    select
        invoice_id,
        customer_id,
        currency,
        usd_per_unit,
        total_amount,
        issued_at,
        due_at,
        cast(due_at as date) as due_date,
        coalesce(voided_at, case when status = 'void' then coalesce(updated_at, issued_at) end) as voided_at,
        coalesce(
            uncollectible_at, case when status = 'uncollectible' then coalesce(updated_at, issued_at) end
        ) as uncollectible_at
    from invoices
    where status <> 'draft'

),

-- settlements only ever lower a balance, so once settled an invoice stays
-- settled: month ends after that need no range join
closings as (

    select
        invoice_id,
        applied_at as closed_at
    from settlements
    where is_closing

),

open_month_ends as (

    select
        receivables.*,
        months.month,
        months.next_month_start_at,
        months.month_last_date
    from receivables
    inner join months
        on receivables.issued_at < months.next_month_start_at
    left join closings
        on receivables.invoice_id = closings.invoice_id
    where
        (closings.closed_at is null or closings.closed_at >= months.next_month_start_at)
        and (receivables.voided_at is null or receivables.voided_at >= months.next_month_start_at)
        and (receivables.uncollectible_at is null or receivables.uncollectible_at >= months.next_month_start_at)

),

settled_by_month_end as (

    select
        open_month_ends.invoice_id,
        open_month_ends.month,
        sum(settlements.amount) as settled_amount
    from open_month_ends
    inner join settlements
        on
            open_month_ends.invoice_id = settlements.invoice_id
            and open_month_ends.next_month_start_at > settlements.applied_at
    group by open_month_ends.invoice_id, open_month_ends.month

),

balances as (

    select
        open_month_ends.*,
        coalesce(settled_by_month_end.settled_amount, 0) as settled_amount,
        open_month_ends.total_amount - coalesce(settled_by_month_end.settled_amount, 0) as balance_amount,
        {{ dbt.datediff('open_month_ends.due_date', 'open_month_ends.month_last_date', 'day') }} as days_past_due
    from open_month_ends
    left join settled_by_month_end
        on
            open_month_ends.invoice_id = settled_by_month_end.invoice_id
            and open_month_ends.month = settled_by_month_end.month

),

final as (

    select
        invoice_id,
        month,
        customer_id,
        currency,
        usd_per_unit,
        total_amount,
        settled_amount,
        balance_amount,
        {{ to_usd('balance_amount') }} as balance_usd,
        due_at,
        days_past_due,
        {{ ar_aging_bucket('days_past_due') }} as aging_bucket,
        days_past_due > 0 as is_overdue
    from balances
    where balance_amount > 0

)

select * from final
