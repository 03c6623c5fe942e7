{#- One row per proration line, with the amount the policy bills for it:
    half-up((new price x new qty - old price x old qty) x remaining days /
    days in the billing period), calendar days, prices from the price book
    in the invoice's currency valid on the billing period's start. The change
    is the line's period start; old = the item just before that instant, new
    = at it (the plan from int_subscription_states, an add-on from
    int_anomaly_addon_holdings; an item not held counts 0); the billing
    period is the one in force at the change. expected_amount is null when
    the subscription is not live at the change or a price is missing.
    marts.billing_anomalies compares it with the billed amount
    (proration_error). -#}
with

invoice_lines as (

    select * from {{ ref('stg_billing__invoice_lines') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

subscription_states as (

    select * from {{ ref('int_subscription_states') }}

),

addon_holdings as (

    select * from {{ ref('int_anomaly_addon_holdings') }}

),

prices as (

    select * from {{ ref('stg_billing__products') }}

),

product_types as (

    select
        product_id,
        max(product_type) as product_type
    from prices
    group by product_id

),

proration_lines as (

    select
        invoice_lines.line_id,
        invoice_lines.invoice_id,
        invoices.subscription_id,
        invoices.currency,
        invoice_lines.product_id,
        invoice_lines.period_start as changed_at,
        invoice_lines.amount
    from invoice_lines
    inner join invoices
        on invoice_lines.invoice_id = invoices.invoice_id
    where invoice_lines.is_proration

),

-- The states either side of the change: the one holding the change instant
-- (after) and the one holding the instant just before it (before).
line_states as (

    select
        proration_lines.*,
        after_change.is_live,
        after_change.life_number,
        after_change.period_started_at,
        after_change.period_ends_at,
        after_change.plan_product_id as plan_product_after,
        after_change.plan_quantity as plan_quantity_after,
        before_change.plan_product_id as plan_product_before,
        before_change.plan_quantity as plan_quantity_before
    from proration_lines
    left join subscription_states as after_change
        on
            proration_lines.subscription_id = after_change.subscription_id
            and proration_lines.changed_at >= after_change.valid_from
            and (after_change.valid_to is null or proration_lines.changed_at < after_change.valid_to)
    left join subscription_states as before_change
        on
            proration_lines.subscription_id = before_change.subscription_id
            and proration_lines.changed_at > before_change.valid_from
            and (before_change.valid_to is null or proration_lines.changed_at <= before_change.valid_to)
            and before_change.is_live
            and after_change.life_number = before_change.life_number

),

-- The line's item before and after: a plan line compares plans (a tier or
-- seat change); an add-on line compares that add-on's holdings.
line_items as (

    select
        line_states.*,
        product_types.product_type,
        case
            when product_types.product_type = 'plan' then line_states.plan_product_before
            else line_states.product_id
        end as product_before,
        case
            when product_types.product_type = 'plan' then coalesce(line_states.plan_quantity_before, 0)
            else coalesce(addon_before.quantity, 0)
        end as quantity_before,
        case
            when product_types.product_type = 'plan' then line_states.plan_product_after
            else line_states.product_id
        end as product_after,
        case
            when product_types.product_type = 'plan' then line_states.plan_quantity_after
            else coalesce(addon_after.quantity, 0)
        end as quantity_after
    from line_states
    left join product_types
        on line_states.product_id = product_types.product_id
    left join addon_holdings as addon_before
        on
            line_states.subscription_id = addon_before.subscription_id
            and line_states.life_number = addon_before.life_number
            and line_states.product_id = addon_before.product_id
            and line_states.changed_at > addon_before.held_from
            and (addon_before.held_until is null or line_states.changed_at <= addon_before.held_until)
    left join addon_holdings as addon_after
        on
            line_states.subscription_id = addon_after.subscription_id
            and line_states.life_number = addon_after.life_number
            and line_states.product_id = addon_after.product_id
            and line_states.changed_at >= addon_after.held_from
            and (addon_after.held_until is null or line_states.changed_at < addon_after.held_until)

),

priced_items as (

    select
        line_items.*,
        -- nothing held before: no price needed
        case when line_items.quantity_before = 0 then 0 else price_before.unit_amount end as unit_amount_before,
        price_after.unit_amount as unit_amount_after,
        {{ dbt.datediff(
            'cast(line_items.period_started_at as date)', 'cast(line_items.period_ends_at as date)', 'day'
        ) }} as days_in_period,
        {{ dbt.datediff('cast(line_items.changed_at as date)', 'cast(line_items.period_ends_at as date)', 'day') }}
            as remaining_days
    from line_items
    left join prices as price_before
        on {{ price_book_join(
            'price_before', 'line_items.product_before', 'line_items.currency',
            'cast(line_items.period_started_at as date)'
        ) }}
    left join prices as price_after
        on {{ price_book_join(
            'price_after', 'line_items.product_after', 'line_items.currency',
            'cast(line_items.period_started_at as date)'
        ) }}

),

final as (

    select
        line_id,
        invoice_id,
        subscription_id,
        currency,
        product_id,
        product_type,
        changed_at,
        period_started_at,
        period_ends_at,
        days_in_period,
        remaining_days,
        product_before,
        quantity_before,
        unit_amount_before,
        product_after,
        quantity_after,
        unit_amount_after,
        unit_amount_after * quantity_after - unit_amount_before * quantity_before as full_period_amount,
        case
            when is_live and days_in_period > 0
                then {{ prorate_half_up(
                    'unit_amount_after * quantity_after - unit_amount_before * quantity_before',
                    'remaining_days', 'days_in_period', 'currency'
                ) }}
        end as expected_amount,
        amount as billed_amount
    from priced_items

)

select * from final
