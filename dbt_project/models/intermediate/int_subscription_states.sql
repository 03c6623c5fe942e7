{#- One row per subscription per state interval [valid_from, valid_to): the
    plan, seats and add-ons in force, whether the subscription is live, and
    its MRR in the customer's currency. A new interval starts at every event
    that changes something and at every billing-period start (the price and
    the loyalty discount are fixed per period). Rules: _int_subscription__models.yml. -#}
with

subscription_events as (

    select * from {{ ref('stg_billing__subscription_events') }}

),

products as (

    select * from {{ ref('stg_billing__products') }}

),

customers as (

    select * from {{ ref('stg_billing__customers') }}

),

reporting_months as (

    select * from {{ ref('int_subscription_reporting_months') }}

),

-- Events at one instant apply ends first (a cancellation and a comeback at
-- the same instant leave the subscription live), then starts, then add-on
-- removals, then the rest (add-ons bought at sign-up share its timestamp).
ranked_events as (

    select
        *,
        case
            when is_end then 1
            when is_start then 2
            when event_type = 'addon_removed' then 3
            else 4
        end as same_instant_rank
    from subscription_events

),

sequenced_events as (

    select
        *,
        row_number() over (
            partition by subscription_id
            order by effective_at, same_instant_rank, event_id
        ) as event_sequence
    from ranked_events

),

-- A life runs from a created / reactivated event; life 0 (events before any
-- start) is ignored.
numbered_events as (

    select
        *,
        sum(case when is_start then 1 else 0 end) over (
            partition by subscription_id
            order by event_sequence
            rows between unbounded preceding and current row
        ) as life_number
    from sequenced_events

),

life_ends as (

    select
        subscription_id,
        life_number,
        event_sequence as end_sequence,
        event_type as end_event_type,
        effective_at as ended_at,
        row_number() over (partition by subscription_id, life_number order by event_sequence) as end_rank
    from numbered_events
    where is_end and life_number > 0

),

lives as (

    select
        life_starts.subscription_id,
        life_starts.customer_id,
        life_starts.life_number,
        life_starts.event_type as life_start_event_type,
        life_starts.effective_at as life_started_at,
        first_ends.end_sequence,
        first_ends.end_event_type,
        first_ends.ended_at,
        lead(life_starts.effective_at) over (
            partition by life_starts.subscription_id
            order by life_starts.life_number
        ) as next_life_started_at
    from numbered_events as life_starts
    left join life_ends as first_ends
        on
            life_starts.subscription_id = first_ends.subscription_id
            and life_starts.life_number = first_ends.life_number
            and first_ends.end_rank = 1
    where life_starts.is_start

),

-- A start while live (no end in between) restarts the life: the earlier one
-- is live until the restart.
life_windows as (

    select
        *,
        coalesce(ended_at, next_life_started_at) as live_until
    from lives

),

-- Only the first end of a life counts; changes after it (before a comeback)
-- change nothing.
live_events as (

    select numbered_events.*
    from numbered_events
    inner join life_windows
        on
            numbered_events.subscription_id = life_windows.subscription_id
            and numbered_events.life_number = life_windows.life_number
    where life_windows.end_sequence is null or numbered_events.event_sequence < life_windows.end_sequence

),

plan_events as (

    select
        subscription_id,
        life_number,
        event_sequence,
        effective_at,
        -- quantity_changed sets the plan's seats only, whatever product it names
        case when event_type in ('created', 'reactivated', 'plan_changed') then product_id end as set_product_id,
        quantity as set_quantity
    from live_events
    where event_type in ('created', 'reactivated', 'plan_changed', 'quantity_changed')

),

plan_carry_groups as (

    select
        *,
        count(set_product_id) over (
            partition by subscription_id, life_number
            order by event_sequence
            rows between unbounded preceding and current row
        ) as product_group,
        count(set_quantity) over (
            partition by subscription_id, life_number
            order by event_sequence
            rows between unbounded preceding and current row
        ) as quantity_group
    from plan_events

),

-- A change that leaves out the product or the seats carries them from
-- earlier in the life; a plan without any seat count is one unit.
plan_changes as (

    select
        subscription_id,
        life_number,
        event_sequence,
        effective_at,
        max(set_product_id) over (partition by subscription_id, life_number, product_group) as product_id,
        coalesce(max(set_quantity) over (partition by subscription_id, life_number, quantity_group), 1) as quantity
    from plan_carry_groups

),

plan_items as (

    select
        plan_changes.subscription_id,
        plan_changes.life_number,
        'plan' as item_type,
        plan_changes.product_id,
        plan_changes.quantity,
        plan_changes.effective_at as valid_from,
        coalesce(
            lead(plan_changes.effective_at) over (
                partition by plan_changes.subscription_id, plan_changes.life_number
                order by plan_changes.event_sequence
            ),
            life_windows.live_until
        ) as valid_to
    from plan_changes
    inner join life_windows
        on
            plan_changes.subscription_id = life_windows.subscription_id
            and plan_changes.life_number = life_windows.life_number

),

-- An add-on is held from its addon_added (with that event's quantity) until
-- the next event for the same add-on in the life (a removal, or an addition
-- that replaces the quantity) or the life's end: a comeback starts without.
addon_intervals as (

    select
        live_events.subscription_id,
        live_events.life_number,
        'addon' as item_type,
        live_events.product_id,
        coalesce(live_events.quantity, 1) as quantity,
        live_events.event_type,
        live_events.effective_at as valid_from,
        coalesce(
            lead(live_events.effective_at) over (
                partition by live_events.subscription_id, live_events.life_number, live_events.product_id
                order by live_events.event_sequence
            ),
            life_windows.live_until
        ) as valid_to
    from live_events
    inner join life_windows
        on
            live_events.subscription_id = life_windows.subscription_id
            and live_events.life_number = life_windows.life_number
    where
        live_events.event_type in ('addon_added', 'addon_removed')
        and live_events.product_id is not null

),

items as (

    select
        subscription_id,
        life_number,
        item_type,
        product_id,
        quantity,
        valid_from,
        valid_to
    from plan_items
    union all
    select
        subscription_id,
        life_number,
        item_type,
        product_id,
        quantity,
        valid_from,
        valid_to
    from addon_intervals
    where event_type = 'addon_added'

),

-- Several changes at one instant: only the last one is ever in force.
held_items as (

    select *
    from items
    where valid_to is null or valid_to > valid_from

),

product_versions as (

    select
        product_id,
        product_type,
        tier,
        billing_period,
        row_number() over (partition by product_id order by valid_from desc, currency asc) as version_rank
    from products

),

product_catalog as (

    select
        product_id,
        product_type,
        tier,
        billing_period
    from product_versions
    where version_rank = 1

),

plan_billing_periods as (

    select
        held_items.subscription_id,
        held_items.life_number,
        held_items.valid_from,
        product_catalog.billing_period,
        lag(product_catalog.billing_period) over (
            partition by held_items.subscription_id, held_items.life_number
            order by held_items.valid_from
        ) as previous_billing_period,
        row_number() over (
            partition by held_items.subscription_id, held_items.life_number
            order by held_items.valid_from
        ) as plan_item_number
    from held_items
    left join product_catalog
        on held_items.product_id = product_catalog.product_id
    where held_items.item_type = 'plan'

),

-- Billing periods are anchored on the life's start, and anew when a plan
-- change switches the billing period (a new cycle starts that day).
anchors as (

    select
        subscription_id,
        life_number,
        billing_period,
        {{ months_in_billing_period('billing_period') }} as months_per_period,
        valid_from as anchored_at,
        lead(valid_from) over (partition by subscription_id, life_number order by valid_from) as next_anchored_at
    from plan_billing_periods
    where plan_item_number = 1 or billing_period is distinct from previous_billing_period

),

anchor_months as (

    select
        anchors.subscription_id,
        anchors.life_number,
        anchors.months_per_period,
        anchors.anchored_at,
        coalesce(anchors.next_anchored_at, life_windows.live_until) as anchor_ends_at,
        {{ dbt.datediff(dbt.date_trunc('month', 'anchors.anchored_at'), 'reporting_months.month_start_at', 'month') }}
            as months_since_anchor
    from anchors
    inner join life_windows
        on
            anchors.subscription_id = life_windows.subscription_id
            and anchors.life_number = life_windows.life_number
    inner join reporting_months
        on reporting_months.month_start_at >= {{ dbt.date_trunc('month', 'anchors.anchored_at') }}

),

-- Period k starts k x months_per_period calendar months after the anchor
-- (counted from the anchor, so a day clamped in a short month comes back).
period_starts as (

    select
        subscription_id,
        life_number,
        anchor_ends_at,
        {{ dbt.dateadd('month', 'months_since_anchor', 'anchored_at') }} as period_started_at,
        {{ dbt.dateadd('month', 'months_since_anchor + months_per_period', 'anchored_at') }} as period_ends_at
    from anchor_months
    where mod(months_since_anchor, months_per_period) = 0

),

billing_periods as (

    select
        period_starts.subscription_id,
        period_starts.life_number,
        period_starts.period_started_at,
        period_starts.period_ends_at,
        coalesce(
            lead(period_starts.period_started_at) over (
                partition by period_starts.subscription_id, period_starts.life_number
                order by period_starts.period_started_at
            ),
            life_windows.live_until
        ) as period_valid_to
    from period_starts
    inner join life_windows
        on
            period_starts.subscription_id = life_windows.subscription_id
            and period_starts.life_number = life_windows.life_number
    where period_starts.anchor_ends_at is null or period_starts.period_started_at < period_starts.anchor_ends_at

),

boundaries as (

    select
        subscription_id,
        life_started_at as boundary_at
    from life_windows
    union distinct
    select
        subscription_id,
        ended_at
    from life_windows
    where ended_at is not null
    union distinct
    select
        subscription_id,
        valid_from
    from held_items
    union distinct
    select
        subscription_id,
        valid_to
    from held_items
    where valid_to is not null
    union distinct
    select
        subscription_id,
        period_started_at
    from billing_periods

),

intervals as (

    select
        subscription_id,
        boundary_at as valid_from,
        lead(boundary_at) over (partition by subscription_id order by boundary_at) as valid_to
    from boundaries

),

interval_lives as (

    select
        intervals.subscription_id,
        intervals.valid_from,
        intervals.valid_to,
        life_windows.customer_id,
        life_windows.life_number,
        life_windows.life_start_event_type,
        life_windows.life_started_at,
        life_windows.end_event_type,
        life_windows.ended_at is null or intervals.valid_from < life_windows.ended_at as is_live
    from intervals
    inner join life_windows
        on
            intervals.subscription_id = life_windows.subscription_id
            and intervals.valid_from >= life_windows.life_started_at
            and (
                life_windows.next_life_started_at is null
                or intervals.valid_from < life_windows.next_life_started_at
            )

),

interval_periods as (

    select
        interval_lives.*,
        billing_periods.period_started_at,
        billing_periods.period_ends_at
    from interval_lives
    left join billing_periods
        on
            interval_lives.subscription_id = billing_periods.subscription_id
            and interval_lives.life_number = billing_periods.life_number
            and interval_lives.valid_from >= billing_periods.period_started_at
            and (
                billing_periods.period_valid_to is null
                or interval_lives.valid_from < billing_periods.period_valid_to
            )

),

interval_items as (

    select
        interval_periods.subscription_id,
        interval_periods.customer_id,
        interval_periods.valid_from,
        interval_periods.period_started_at,
        held_items.item_type,
        held_items.product_id,
        held_items.quantity
    from interval_periods
    inner join held_items
        on
            interval_periods.subscription_id = held_items.subscription_id
            and interval_periods.valid_from >= held_items.valid_from
            and (held_items.valid_to is null or interval_periods.valid_from < held_items.valid_to)
    where interval_periods.is_live

),

-- Loyalty counts from the customer's first `created`, across subscriptions
-- (a comeback does not reset it).
first_subscriptions as (

    select
        customer_id,
        min(effective_at) as first_subscription_at
    from subscription_events
    where event_type = 'created'
    group by customer_id

),

-- The price is the book row of the customer's currency valid on the date the
-- current billing period started.
priced_items as (

    select
        interval_items.*,
        product_catalog.tier,
        product_catalog.billing_period as product_billing_period,
        products.unit_amount,
        coalesce(
            interval_items.period_started_at >= {{ dbt.dateadd(
                'month', var('loyalty_after_months'), 'first_subscriptions.first_subscription_at'
            ) }},
            false
        ) as is_loyalty_discounted
    from interval_items
    left join customers
        on interval_items.customer_id = customers.customer_id
    left join product_catalog
        on interval_items.product_id = product_catalog.product_id
    left join products
        on
            interval_items.product_id = products.product_id
            and customers.currency = products.currency
            and cast(interval_items.period_started_at as date) >= products.valid_from
            and (products.valid_to is null or cast(interval_items.period_started_at as date) < products.valid_to)
    left join first_subscriptions
        on interval_items.customer_id = first_subscriptions.customer_id

),

{#- A double divided and rounded as DuckDB always did it, on every adapter
    (macros/cross_db/doubles.sql). -#}
{%- set exact_monthly_amount -%}
    cast(
        unit_amount * quantity
        * (case when is_loyalty_discounted then 1 - {{ var('loyalty_discount_rate') }} else 1 end)
        as double
    ) / {{ months_in_billing_period('product_billing_period') }}
{%- endset %}

item_mrr as (

    select
        *,
        cast({{ round_double(exact_monthly_amount, 4) }} as decimal(18, 4)) as item_mrr_amount
    from priced_items

),

-- An item without a price leaves the MRR null (tested), never silently low.
interval_mrr as (

    select
        subscription_id,
        valid_from,
        max(case when item_type = 'plan' then product_id end) as plan_product_id,
        max(case when item_type = 'plan' then tier end) as tier,
        max(case when item_type = 'plan' then product_billing_period end) as billing_period,
        max(case when item_type = 'plan' then quantity end) as plan_quantity,
        sum(case when item_type = 'addon' then 1 else 0 end) as addon_count,
        sum(case when item_type = 'addon' then quantity else 0 end) as addon_quantity,
        max(case when is_loyalty_discounted then 1 else 0 end) = 1 as is_loyalty_discounted,
        case
            when sum(case when item_type = 'plan' and item_mrr_amount is null then 1 else 0 end) = 0
                then sum(case when item_type = 'plan' then item_mrr_amount end)
        end as plan_mrr_amount,
        case
            when sum(case when item_type = 'addon' and item_mrr_amount is null then 1 else 0 end) = 0
                then coalesce(sum(case when item_type = 'addon' then item_mrr_amount end), 0)
        end as addon_mrr_amount,
        case when count(item_mrr_amount) = count(*) then sum(item_mrr_amount) end as mrr_amount
    from item_mrr
    group by subscription_id, valid_from

),

final as (

    select
        interval_periods.subscription_id,
        interval_periods.customer_id,
        interval_periods.valid_from,
        interval_periods.valid_to,
        interval_periods.is_live,
        interval_periods.life_number,
        interval_periods.life_start_event_type,
        interval_periods.life_started_at,
        case when not interval_periods.is_live then interval_periods.end_event_type end as ended_by_event_type,
        interval_periods.period_started_at,
        interval_periods.period_ends_at,
        interval_mrr.plan_product_id,
        interval_mrr.tier,
        interval_mrr.billing_period,
        interval_mrr.plan_quantity,
        coalesce(interval_mrr.addon_count, 0) as addon_count,
        coalesce(interval_mrr.addon_quantity, 0) as addon_quantity,
        coalesce(interval_mrr.is_loyalty_discounted, false) as is_loyalty_discounted,
        customers.currency,
        case when interval_periods.is_live then interval_mrr.plan_mrr_amount else 0 end as plan_mrr_amount,
        case when interval_periods.is_live then interval_mrr.addon_mrr_amount else 0 end as addon_mrr_amount,
        case when interval_periods.is_live then interval_mrr.mrr_amount else 0 end as mrr_amount
    from interval_periods
    left join interval_mrr
        on
            interval_periods.subscription_id = interval_mrr.subscription_id
            and interval_periods.valid_from = interval_mrr.valid_from
    left join customers
        on interval_periods.customer_id = customers.customer_id

)

select * from final
