{#- One row per subscription life x add-on product x holding [held_from,
    held_until): the add-on's quantity while held. int_subscription_states
    sums add-ons per state; the billing checks need them per product (a
    proration line prices one add-on, an expected invoice bills each). The
    rules are int_subscription_states' (_int_subscription__models.yml), on its
    lives: an addon_added holds the product with the event's quantity until
    the next add-on event of that product in the life (a removal, or an
    addition that replaces the quantity) or the life's end; at one instant a
    removal applies before an addition, ties by event_id. -#}
with

subscription_states as (

    select * from {{ ref('int_subscription_states') }}

),

subscription_events as (

    select * from {{ ref('stg_billing__subscription_events') }}

),

life_bounds as (

    select
        subscription_id,
        life_number,
        min(life_started_at) as life_started_at,
        min(case when not is_live then valid_from end) as life_ended_at
    from subscription_states
    group by subscription_id, life_number

),

-- A start while live restarts the life: the earlier one lasts until then.
lives as (

    select
        subscription_id,
        life_number,
        life_started_at,
        coalesce(
            life_ended_at,
            lead(life_started_at) over (partition by subscription_id order by life_number)
        ) as live_until
    from life_bounds

),

addon_events as (

    select
        lives.subscription_id,
        lives.life_number,
        lives.live_until,
        subscription_events.event_id,
        subscription_events.event_type,
        subscription_events.product_id,
        coalesce(subscription_events.quantity, 1) as quantity,
        subscription_events.effective_at,
        case when subscription_events.event_type = 'addon_removed' then 1 else 2 end as same_instant_rank
    from subscription_events
    inner join lives
        on
            subscription_events.subscription_id = lives.subscription_id
            and subscription_events.effective_at >= lives.life_started_at
            and (lives.live_until is null or subscription_events.effective_at < lives.live_until)
    where
        subscription_events.event_type in ('addon_added', 'addon_removed')
        and subscription_events.product_id is not null

),

holdings as (

    select
        subscription_id,
        life_number,
        product_id,
        event_type,
        quantity,
        effective_at as held_from,
        coalesce(
            lead(effective_at) over (
                partition by subscription_id, life_number, product_id
                order by effective_at, same_instant_rank, event_id
            ),
            live_until
        ) as held_until
    from addon_events

),

final as (

    select
        subscription_id,
        life_number,
        product_id,
        quantity,
        held_from,
        held_until
    from holdings
    where
        event_type = 'addon_added'
        -- an addition replaced at its own instant was never in force
        and (held_until is null or held_until > held_from)

)

select * from final
