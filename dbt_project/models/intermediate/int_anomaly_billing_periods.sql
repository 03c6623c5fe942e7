{#- One row per live billing period that has started by the data's as-of
    instant, with the recurring invoice the policy expects for it: each item
    held at the period's first instant (the plan from int_subscription_states,
    add-ons from int_anomaly_addon_holdings) at the price-book price of the
    customer's currency on the period start, the loyalty discount when due
    (int_subscription_states.is_loyalty_discounted), the country's tax, each
    half-up per line to the minor unit; with the rate of the period start
    (the day the invoice is due to be issued) for its USD value.
    marts.billing_anomalies flags the periods nobody invoiced (missed_invoice). -#}
with

subscription_states as (

    select * from {{ ref('int_subscription_states') }}

),

addon_holdings as (

    select * from {{ ref('int_anomaly_addon_holdings') }}

),

customers as (

    select * from {{ ref('stg_billing__customers') }}

),

countries as (

    select * from {{ ref('ref_countries') }}

),

prices as (

    select * from {{ ref('stg_billing__products') }}

),

fx_rates as (

    select * from {{ ref('stg_finance__fx_rates') }}

),

subscription_events as (

    select * from {{ ref('stg_billing__subscription_events') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

-- The latest fact delivered (as int_subscription_reporting_months): a period
-- that starts later is not due yet. The policy issues a recurring invoice at
-- its period start, so a period started by then must have one.
as_of as (

    select max(latest_at) as as_of_at
    from (
        select max(effective_at) as latest_at from subscription_events
        union all
        select max(issued_at) as latest_at from invoices
    ) as latest_facts

),

-- The tax rate of the customer's country.
customer_tax_rates as (

    select
        customers.customer_id,
        countries.tax_rate
    from customers
    left join countries
        on customers.country = countries.country

),

-- A state row starts at every period start; the one starting there is the
-- state the period is billed for (downgrades at the period start included),
-- in the customer's currency, with the loyalty discount when it is due
-- (int_subscription_states applies the policy's rule to the period start).
periods as (

    select
        subscription_states.subscription_id,
        subscription_states.customer_id,
        subscription_states.currency,
        subscription_states.is_loyalty_discounted,
        subscription_states.life_number,
        subscription_states.life_start_event_type,
        subscription_states.life_started_at,
        subscription_states.period_started_at,
        subscription_states.period_ends_at,
        subscription_states.plan_product_id,
        subscription_states.plan_quantity
    from subscription_states
    cross join as_of
    where
        subscription_states.is_live
        and subscription_states.valid_from = subscription_states.period_started_at
        and subscription_states.period_started_at <= as_of.as_of_at

),

period_items as (

    select
        subscription_id,
        period_started_at,
        plan_product_id as product_id,
        plan_quantity as quantity
    from periods
    union all
    select
        periods.subscription_id,
        periods.period_started_at,
        addon_holdings.product_id,
        addon_holdings.quantity
    from periods
    inner join addon_holdings
        on
            periods.subscription_id = addon_holdings.subscription_id
            and periods.life_number = addon_holdings.life_number
            and periods.period_started_at >= addon_holdings.held_from
            and (addon_holdings.held_until is null or periods.period_started_at < addon_holdings.held_until)

),

priced_lines as (

    select
        periods.subscription_id,
        periods.period_started_at,
        periods.currency,
        periods.is_loyalty_discounted,
        customer_tax_rates.tax_rate,
        prices.unit_amount,
        {{ round_to_minor_unit('prices.unit_amount * period_items.quantity', 'periods.currency') }} as amount
    from period_items
    inner join periods
        on
            period_items.subscription_id = periods.subscription_id
            and period_items.period_started_at = periods.period_started_at
    left join customer_tax_rates
        on periods.customer_id = customer_tax_rates.customer_id
    left join prices
        on {{ price_book_join(
            'prices', 'period_items.product_id', 'periods.currency', 'cast(periods.period_started_at as date)'
        ) }}

),

line_amounts as (

    select
        *,
        {{ policy_discount_amount('amount', 'is_loyalty_discounted', 'currency') }} as discount_amount
    from priced_lines

),

taxed_lines as (

    select
        *,
        {{ policy_tax_amount('amount - discount_amount', 'tax_rate', 'currency') }} as tax_amount
    from line_amounts

),

-- A line without a book price (or a customer without a tax rate) leaves the
-- expected amounts null rather than low.
period_amounts as (

    select
        subscription_id,
        period_started_at,
        count(*) as expected_lines,
        case when count(unit_amount) = count(*) then sum(amount) end as expected_subtotal_amount,
        case when count(unit_amount) = count(*) then sum(discount_amount) end as expected_discount_amount,
        case when count(tax_amount) = count(*) then sum(tax_amount) end as expected_tax_amount
    from taxed_lines
    group by subscription_id, period_started_at

),

final as (

    select
        periods.subscription_id,
        periods.customer_id,
        periods.life_number,
        periods.life_start_event_type,
        periods.life_started_at,
        periods.period_started_at,
        periods.period_ends_at,
        periods.currency,
        period_amounts.expected_lines,
        period_amounts.expected_subtotal_amount,
        period_amounts.expected_discount_amount,
        period_amounts.expected_tax_amount,
        period_amounts.expected_subtotal_amount - period_amounts.expected_discount_amount
        + period_amounts.expected_tax_amount as expected_total_amount,
        {{ usd_per_unit('fx_rates', 'periods.currency') }} as usd_per_unit
    from periods
    inner join period_amounts
        on
            periods.subscription_id = period_amounts.subscription_id
            and periods.period_started_at = period_amounts.period_started_at
    left join fx_rates
        on {{ fx_rate_join('fx_rates', 'periods.currency', 'cast(periods.period_started_at as date)') }}

)

select * from final
