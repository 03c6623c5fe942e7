{#- One row per customer per reporting month: activity and MRR at the month's
    first instant and at the next month's first instant, the flows between
    them (churn, new, reactivation, MRR movements) and the customer's segment
    at the start of the month. Rules: _int_subscription__models.yml. -#}
with

subscription_states as (

    select * from {{ ref('int_subscription_states') }}

),

reporting_months as (

    select * from {{ ref('int_subscription_reporting_months') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

fx_rates as (

    select * from {{ ref('stg_finance__fx_rates') }}

),

customer_first_starts as (

    select
        customer_id,
        min(life_started_at) as first_started_at
    from subscription_states
    group by customer_id

),

first_reporting_month as (

    select min(month_start_at) as first_month_start_at
    from reporting_months

),

-- A customer's months start with the month whose flows hold the first start
-- (a start at 00:00 on the 1st is active at that month's first instant, so
-- it is the previous month's flow), but never before the first reporting
-- month: customers live at its first instant are its opening balance.
customer_first_flows as (

    select
        customer_id,
        first_started_at,
        {{ boundary_month('first_started_at') }} as first_flow_month_start_at
    from customer_first_starts

),

customer_spans as (

    select
        customer_first_flows.customer_id,
        customer_first_flows.first_started_at,
        case
            when customer_first_flows.first_flow_month_start_at < first_reporting_month.first_month_start_at
                then first_reporting_month.first_month_start_at
            else customer_first_flows.first_flow_month_start_at
        end as first_month_start_at
    from customer_first_flows
    cross join first_reporting_month

),

customer_month_spine as (

    select
        customer_spans.customer_id,
        customer_spans.first_started_at,
        reporting_months.month,
        reporting_months.month_start_at,
        reporting_months.next_month_start_at
    from customer_spans
    inner join reporting_months
        on customer_spans.first_month_start_at <= reporting_months.month_start_at

),

states_at_start as (

    select
        customer_month_spine.customer_id,
        customer_month_spine.month,
        customer_month_spine.next_month_start_at,
        subscription_states.subscription_id,
        subscription_states.is_live,
        subscription_states.tier,
        subscription_states.billing_period,
        subscription_states.period_ends_at,
        subscription_states.mrr_amount
    from customer_month_spine
    inner join subscription_states
        on
            customer_month_spine.customer_id = subscription_states.customer_id
            and customer_month_spine.month_start_at >= subscription_states.valid_from
            and (
                subscription_states.valid_to is null
                or customer_month_spine.month_start_at < subscription_states.valid_to
            )

),

states_at_end as (

    select
        customer_month_spine.customer_id,
        customer_month_spine.month,
        customer_month_spine.month_start_at,
        subscription_states.subscription_id,
        subscription_states.is_live,
        subscription_states.valid_from,
        subscription_states.ended_by_event_type,
        subscription_states.mrr_amount
    from customer_month_spine
    inner join subscription_states
        on
            customer_month_spine.customer_id = subscription_states.customer_id
            and customer_month_spine.next_month_start_at >= subscription_states.valid_from
            and (
                subscription_states.valid_to is null
                or customer_month_spine.next_month_start_at < subscription_states.valid_to
            )

),

-- A live subscription without a price has a null MRR: keep it null here too.
start_positions as (

    select
        customer_id,
        month,
        max(case when is_live then 1 else 0 end) = 1 as is_active_start,
        case when count(mrr_amount) = count(*) then sum(mrr_amount) end as mrr_start_amount,
        -- the current billing period ends by the next month's first instant
        max(case when is_live and period_ends_at <= next_month_start_at then 1 else 0 end) = 1
            as has_renewal_in_month
    from states_at_start
    group by customer_id, month

),

end_positions as (

    select
        customer_id,
        month,
        max(case when is_live then 1 else 0 end) = 1 as is_active_end,
        case when count(mrr_amount) = count(*) then sum(mrr_amount) end as mrr_end_amount
    from states_at_end
    group by customer_id, month

),

-- The ending event of a churn: the latest end in the month among the
-- customer's subscriptions (all of them are ended at the next month's start).
ranked_endings as (

    select
        customer_id,
        month,
        ended_by_event_type,
        row_number() over (
            partition by customer_id, month
            order by valid_from desc, ended_by_event_type asc
        ) as ending_rank
    from states_at_end
    where not is_live and valid_from > month_start_at

),

endings as (

    select
        customer_id,
        month,
        ended_by_event_type
    from ranked_endings
    where ending_rank = 1

),

-- The plan at the month start: of the live subscriptions, the one with the
-- highest MRR.
ranked_start_plans as (

    select
        customer_id,
        month,
        tier,
        billing_period,
        row_number() over (
            partition by customer_id, month
            order by mrr_amount desc nulls last, subscription_id asc
        ) as plan_rank
    from states_at_start
    where is_live

),

-- Not active at the start: the first live state of the month instead.
ranked_first_live_plans as (

    select
        customer_month_spine.customer_id,
        customer_month_spine.month,
        subscription_states.tier,
        subscription_states.billing_period,
        row_number() over (
            partition by customer_month_spine.customer_id, customer_month_spine.month
            order by
                subscription_states.valid_from asc,
                subscription_states.mrr_amount desc nulls last,
                subscription_states.subscription_id asc
        ) as plan_rank
    from customer_month_spine
    inner join subscription_states
        on
            customer_month_spine.customer_id = subscription_states.customer_id
            and customer_month_spine.month_start_at < subscription_states.valid_from
            and customer_month_spine.next_month_start_at >= subscription_states.valid_from
    where subscription_states.is_live

),

life_starts as (

    select distinct
        customer_id,
        subscription_id,
        life_start_event_type,
        life_started_at
    from subscription_states

),

-- Starts that are flows of the month: after its first instant, at or before
-- the next month's first instant.
reactivations as (

    select
        customer_month_spine.customer_id,
        customer_month_spine.month
    from customer_month_spine
    inner join life_starts
        on
            customer_month_spine.customer_id = life_starts.customer_id
            and customer_month_spine.month_start_at < life_starts.life_started_at
            and customer_month_spine.next_month_start_at >= life_starts.life_started_at
    where life_starts.life_start_event_type = 'reactivated'
    group by customer_month_spine.customer_id, customer_month_spine.month

),

-- The same rate converts start and end, so FX never makes a movement.
month_rates as (

    select
        customer_month_spine.customer_id,
        customer_month_spine.month,
        customers.currency,
        {{ usd_per_unit('fx_rates', 'customers.currency') }} as usd_per_unit
    from customer_month_spine
    left join customers
        on customer_month_spine.customer_id = customers.customer_id
    left join fx_rates
        on {{ fx_rate_join('fx_rates', 'customers.currency', 'customer_month_spine.month') }}

),

positions as (

    select
        customer_month_spine.customer_id,
        customer_month_spine.month,
        customer_month_spine.month_start_at,
        customer_month_spine.next_month_start_at,
        coalesce(start_positions.is_active_start, false) as is_active_start,
        coalesce(end_positions.is_active_end, false) as is_active_end,
        coalesce(start_positions.has_renewal_in_month, false) as has_renewal_in_month,
        customer_month_spine.first_started_at > customer_month_spine.month_start_at
        and customer_month_spine.first_started_at <= customer_month_spine.next_month_start_at as is_new_customer,
        reactivations.customer_id is not null as is_reactivated,
        endings.ended_by_event_type,
        coalesce(start_plans.tier, first_live_plans.tier) as tier,
        coalesce(start_plans.billing_period, first_live_plans.billing_period) as billing_period,
        month_rates.currency,
        month_rates.usd_per_unit,
        coalesce(start_positions.mrr_start_amount, 0) as mrr_start_amount,
        coalesce(end_positions.mrr_end_amount, 0) as mrr_end_amount
    from customer_month_spine
    left join start_positions
        on
            customer_month_spine.customer_id = start_positions.customer_id
            and customer_month_spine.month = start_positions.month
    left join end_positions
        on
            customer_month_spine.customer_id = end_positions.customer_id
            and customer_month_spine.month = end_positions.month
    left join endings
        on
            customer_month_spine.customer_id = endings.customer_id
            and customer_month_spine.month = endings.month
    left join ranked_start_plans as start_plans
        on
            customer_month_spine.customer_id = start_plans.customer_id
            and customer_month_spine.month = start_plans.month
            and start_plans.plan_rank = 1
    left join ranked_first_live_plans as first_live_plans
        on
            customer_month_spine.customer_id = first_live_plans.customer_id
            and customer_month_spine.month = first_live_plans.month
            and first_live_plans.plan_rank = 1
    left join reactivations
        on
            customer_month_spine.customer_id = reactivations.customer_id
            and customer_month_spine.month = reactivations.month
    left join month_rates
        on
            customer_month_spine.customer_id = month_rates.customer_id
            and customer_month_spine.month = month_rates.month

),

converted as (

    select
        *,
        {{ to_usd('mrr_start_amount') }} as mrr_start_usd,
        {{ to_usd('mrr_end_amount') }} as mrr_end_usd
    from positions

),

-- The zero cases first: 0 -> x is new or reactivation, x -> 0 is churn,
-- never expansion or contraction.
classified as (

    select
        *,
        case
            -- new = the first subscription starts in this month's window; any other
            -- 0 -> x had an earlier paid period, even one that began and ended
            -- inside a month (invisible at month boundaries)
            when mrr_start_usd = 0 and mrr_end_usd > 0 and is_new_customer then 'new'
            when mrr_start_usd = 0 and mrr_end_usd > 0 then 'reactivation'
            when mrr_start_usd > 0 and mrr_end_usd = 0 then 'churned'
            when mrr_end_usd > mrr_start_usd then 'expansion'
            when mrr_end_usd < mrr_start_usd then 'contraction'
            else 'none'
        end as mrr_movement
    from converted

),

-- Tenure counts from the first `created` (dim_customers), else the first start.
tenure_starts as (

    select
        customer_first_starts.customer_id,
        coalesce(customers.first_subscription_at, customer_first_starts.first_started_at) as tenure_started_at
    from customer_first_starts
    left join customers
        on customer_first_starts.customer_id = customers.customer_id

),

-- Whole months since the tenure start, at the month's first instant.
tenures as (

    select
        classified.customer_id,
        classified.month,
        {{ tenure_months('tenure_starts.tenure_started_at', 'classified.month_start_at') }} as tenure_months
    from classified
    inner join tenure_starts
        on classified.customer_id = tenure_starts.customer_id

),

final as (

    select
        classified.customer_id,
        classified.month,
        classified.is_active_start,
        classified.is_active_end,
        classified.is_active_start and not classified.is_active_end as is_churned,
        case
            when classified.is_active_start and not classified.is_active_end
                then case classified.ended_by_event_type
                    when 'cancelled' then 'voluntary'
                    when 'lapsed' then 'involuntary'
                end
        end as churn_type,
        classified.is_new_customer,
        classified.is_reactivated,
        classified.is_active_start and classified.has_renewal_in_month as has_renewal_in_month,
        classified.currency,
        classified.usd_per_unit,
        classified.mrr_start_amount,
        classified.mrr_end_amount,
        classified.mrr_start_usd,
        classified.mrr_end_usd,
        classified.mrr_movement,
        case when classified.mrr_movement = 'new' then classified.mrr_end_usd else 0 end as new_mrr_usd,
        case
            when classified.mrr_movement = 'expansion' then classified.mrr_end_usd - classified.mrr_start_usd
            else 0
        end as expansion_mrr_usd,
        case
            when classified.mrr_movement = 'contraction' then classified.mrr_start_usd - classified.mrr_end_usd
            else 0
        end as contraction_mrr_usd,
        case when classified.mrr_movement = 'churned' then classified.mrr_start_usd else 0 end as churned_mrr_usd,
        case
            when classified.mrr_movement = 'reactivation' then classified.mrr_end_usd
            else 0
        end as reactivation_mrr_usd,
        customers.company_size,
        customers.region,
        customers.acquisition_channel,
        classified.tier,
        classified.billing_period,
        tenures.tenure_months,
        {{ tenure_band('tenures.tenure_months') }} as tenure_band
    from classified
    left join customers
        on classified.customer_id = customers.customer_id
    left join tenures
        on
            classified.customer_id = tenures.customer_id
            and classified.month = tenures.month

)

select * from final
