{#- One row per subscription life, the input of the sBG retention fit
    (marts.sbg_parameters). A life runs from a `created` or `reactivated`
    event to the first `cancelled` / `lapsed` after it, or is right-censored
    at the as-of instant: the latest subscription event delivered (the data
    end; the world reports as of its window end, so at most a day or two
    early). Lives are measured in whole billing periods of the plan they
    started on, counted from the start: renewals fall on the same day of the
    month as the start (anchor days are 1..28). -#}
with

events as (

    select * from {{ ref('stg_billing__subscription_events') }}

),

products as (

    select * from {{ ref('stg_billing__products') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

as_of as (

    select max(effective_at) as as_of_at
    from events

),

-- tier and period belong to the product; the price book repeats them per currency and validity
plans as (

    select distinct
        product_id,
        tier,
        billing_period
    from products
    where product_type = 'plan'

),

-- every start opens a new life; at one instant an end closes the old life before a start opens the next
numbered as (

    select
        event_id,
        subscription_id,
        customer_id,
        event_type,
        product_id,
        effective_at,
        is_start,
        is_end,
        cast(sum(case when is_start then 1 else 0 end) over (
            partition by subscription_id
            order by effective_at, case when is_end then 0 else 1 end, event_id
            rows between unbounded preceding and current row
        ) as {{ dbt.type_int() }}) as life_number
    from events
    where is_start or is_end

),

starts as (

    select
        subscription_id,
        life_number,
        customer_id,
        event_type as start_event_type,
        product_id as plan_product_id,
        effective_at as started_at,
        lead(effective_at) over (
            partition by subscription_id
            order by life_number
        ) as next_started_at
    from numbered
    where is_start

),

-- the first end of a life; a repeated end event changes nothing, and ends before any start are ignored
ends as (

    select
        subscription_id,
        life_number,
        event_type as end_event_type,
        effective_at as ended_at,
        row_number() over (
            partition by subscription_id, life_number
            order by effective_at, event_id
        ) as end_rank
    from numbered
    where is_end and life_number > 0

),

lives as (

    select
        starts.subscription_id,
        starts.life_number,
        starts.customer_id,
        starts.start_event_type,
        starts.plan_product_id,
        starts.started_at,
        ends.end_event_type,
        ends.ended_at,
        as_of.as_of_at,
        -- a start with no end before it (inconsistent data) censors the earlier life there
        coalesce(ends.ended_at, starts.next_started_at, as_of.as_of_at) as observed_until_at
    from starts
    cross join as_of
    left join ends
        on
            starts.subscription_id = ends.subscription_id
            and starts.life_number = ends.life_number
            and ends.end_rank = 1

),

attributes as (

    select
        lives.*,
        customers.company_size,
        customers.region,
        customers.acquisition_channel,
        customers.first_subscription_at,
        plans.tier,
        plans.billing_period,
        -- config/billing_policy.yml billing.months_per_period
        case plans.billing_period
            when 'month' then 1
            when 'quarter' then 3
            when 'year' then 12
        end as months_per_period,
        {{ dbt.datediff('lives.started_at', 'lives.observed_until_at', 'month') }} as months_crossed,
        {{ dbt.datediff('customers.first_subscription_at', 'lives.started_at', 'month') }} as tenure_months_crossed
    from lives
    left join customers
        on lives.customer_id = customers.customer_id
    left join plans
        on lives.plan_product_id = plans.product_id

),

-- datediff counts month boundaries crossed; a month is whole once its day-of-month and time are reached
whole_months as (

    select
        *,
        months_crossed - case
            when {{ dbt.dateadd('month', 'months_crossed', 'started_at') }} > observed_until_at then 1 else 0
        end as months_observed,
        tenure_months_crossed - case
            when {{ dbt.dateadd('month', 'tenure_months_crossed', 'first_subscription_at') }} > started_at
                then 1
            else 0
        end as tenure_months_at_start
    from attributes

),

periods as (

    select
        *,
        cast(floor(1.0 * months_observed / months_per_period) as {{ dbt.type_int() }}) as whole_periods
    from whole_months

),

final as (

    select
        {{ dbt.concat(['subscription_id', "'-'", dbt.cast('life_number', dbt.type_string())]) }} as life_id,
        subscription_id,
        customer_id,
        life_number,
        start_event_type = 'reactivated' as is_reactivation,
        started_at,
        ended_at,
        end_event_type,
        as_of_at,
        plan_product_id,
        company_size,
        region,
        acquisition_channel,
        tier,
        billing_period,
        tenure_months_at_start,
        {{ tenure_band('tenure_months_at_start') }} as tenure_band,
        months_per_period,
        ended_at is not null as is_churned,
        -- censored: renewals survived; churned: the period the life ended in (ended at a
        -- renewal = the periods it paid; a lapse mid-period counts that period; never 0)
        case
            when ended_at is null then whole_periods
            when
                whole_periods = 0
                or ended_at > {{ dbt.dateadd('month', 'whole_periods * months_per_period', 'started_at') }}
                then whole_periods + 1
            else whole_periods
        end as periods_survived
    from periods

)

select * from final
