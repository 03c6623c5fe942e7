{#- One row per customer active at the first instant of a reporting month
    (int_customer_months.is_active_start): the churn-risk drivers over the
    trailing window before that instant, and a transparent score,

        risk_score = sum_i weight_i x min(1, driver_i / saturation_i) / sum_i weight_i,

    weights, saturations, window and thresholds from var('risk')
    (config/billing_policy.yml `risk:`). Events count when they happened at or
    after the window start and before the snapshot instant; the overdue
    balance is the one at the previous month end (int_invoice_balances).
    Rules: _int_customer_risk__models.yml. -#}
{%- set risk = var('risk') -%}
{#- the drivers in the score, in the configuration's order (ties for top_risk_driver) -#}
{%- set driver_names = risk['drivers'] -%}
with

customer_months as (

    select * from {{ ref('int_customer_months') }}

),

reporting_months as (

    select * from {{ ref('int_subscription_reporting_months') }}

),

subscription_states as (

    select * from {{ ref('int_subscription_states') }}

),

invoice_balances as (

    select * from {{ ref('int_invoice_balances') }}

),

payments as (

    select * from {{ ref('stg_billing__payments') }}

),

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

credit_notes as (

    select * from {{ ref('stg_billing__credit_notes') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

survey_responses as (

    select * from {{ ref('stg_surveys__responses') }}

),

snapshots as (

    select
        customer_months.customer_id,
        customer_months.month,
        reporting_months.month_start_at as snapshot_at,
        {{ dbt.dateadd('day', '-' ~ risk['window_days'], 'reporting_months.month_start_at') }} as window_start_at,
        cast({{ dbt.dateadd('month', -1, 'customer_months.month') }} as date) as previous_month,
        customer_months.company_size,
        customer_months.region,
        customer_months.tier,
        customer_months.billing_period,
        customer_months.acquisition_channel,
        customer_months.tenure_months,
        customer_months.tenure_band,
        customer_months.mrr_start_usd
    from customer_months
    inner join reporting_months
        on customer_months.month = reporting_months.month
    where customer_months.is_active_start

),

-- credit notes carry no customer: their invoice's
customer_credit_notes as (

    select
        credit_notes.credit_note_id,
        credit_notes.issued_at,
        credit_notes.reason,
        invoices.customer_id
    from credit_notes
    inner join invoices
        on credit_notes.invoice_id = invoices.invoice_id

),

-- A downgrade is what the customer bought getting smaller within one life:
-- a lower tier, fewer plan seats or fewer add-on seats. MRR contraction is
-- not used: the loyalty discount lowers MRR with no decision by the customer.
state_changes as (

    select
        subscription_id,
        customer_id,
        valid_from,
        is_live,
        case tier when 'basic' then 1 when 'pro' then 2 when 'enterprise' then 3 end as tier_rank,
        plan_quantity,
        addon_quantity,
        lag(is_live) over (partition by subscription_id, life_number order by valid_from) as was_live,
        lag(
            case tier when 'basic' then 1 when 'pro' then 2 when 'enterprise' then 3 end
        ) over (partition by subscription_id, life_number order by valid_from) as previous_tier_rank,
        lag(plan_quantity) over (partition by subscription_id, life_number order by valid_from)
            as previous_plan_quantity,
        lag(addon_quantity) over (partition by subscription_id, life_number order by valid_from)
            as previous_addon_quantity
    from subscription_states

),

-- Every dated event that can drive the score, one row each.
driver_events as (

    select
        customer_id,
        'failed_payment' as event_kind,
        payment_id as event_id,
        attempted_at as occurred_at,
        cast(null as {{ dbt.type_int() }}) as score
    from payments
    where status = 'failed'
    union all
    select
        customer_id,
        'billing_complaint' as event_kind,
        ticket_id as event_id,
        created_at as occurred_at,
        cast(null as {{ dbt.type_int() }}) as score
    from tickets
    where category = 'billing'
    union all
    select
        customer_id,
        'error_credit_note' as event_kind,
        credit_note_id as event_id,
        issued_at as occurred_at,
        cast(null as {{ dbt.type_int() }}) as score
    from customer_credit_notes
    where
        reason in (
            {%- for reason in risk['error_credit_note_reasons'] %}
                '{{ reason }}'{{ ',' if not loop.last }}
            {%- endfor %}
        )
    union all
    select
        customer_id,
        'low_clarity_score' as event_kind,
        response_id as event_id,
        responded_at as occurred_at,
        score
    from survey_responses
    where survey = 'invoice_clarity' and score <= {{ risk['low_clarity_max_score'] }}
    union all
    select
        customer_id,
        'nps_answer' as event_kind,
        response_id as event_id,
        responded_at as occurred_at,
        score
    from survey_responses
    where survey = 'nps'
    union all
    select
        customer_id,
        'downgrade' as event_kind,
        subscription_id as event_id,
        valid_from as occurred_at,
        cast(null as {{ dbt.type_int() }}) as score
    from state_changes
    where
        is_live
        and was_live
        and (
            tier_rank < previous_tier_rank
            or plan_quantity < previous_plan_quantity
            or addon_quantity < previous_addon_quantity
        )

),

windowed_events as (

    select
        snapshots.customer_id,
        snapshots.month,
        driver_events.event_kind,
        driver_events.event_id,
        driver_events.occurred_at,
        driver_events.score
    from snapshots
    inner join driver_events
        on
            snapshots.customer_id = driver_events.customer_id
            and snapshots.window_start_at <= driver_events.occurred_at
            and snapshots.snapshot_at > driver_events.occurred_at

),

event_counts as (

    select
        customer_id,
        month,
        count(case when event_kind = 'failed_payment' then 1 end) as failed_payments,
        count(case when event_kind = 'billing_complaint' then 1 end) as billing_complaints,
        count(case when event_kind = 'error_credit_note' then 1 end) as error_credit_notes,
        count(case when event_kind = 'low_clarity_score' then 1 end) as low_clarity_scores,
        min(case when event_kind = 'low_clarity_score' then score end) as lowest_clarity_score,
        count(case when event_kind = 'downgrade' then 1 end) as downgrades
    from windowed_events
    group by customer_id, month

),

ranked_nps as (

    select
        customer_id,
        month,
        score,
        row_number() over (
            partition by customer_id, month
            order by occurred_at desc, event_id desc
        ) as response_rank
    from windowed_events
    where event_kind = 'nps_answer'

),

latest_nps as (

    select
        customer_id,
        month,
        score as latest_nps_score
    from ranked_nps
    where response_rank = 1

),

overdue_balances as (

    select
        snapshots.customer_id,
        snapshots.month,
        sum(invoice_balances.balance_usd) as overdue_balance_usd
    from snapshots
    inner join invoice_balances
        on
            snapshots.customer_id = invoice_balances.customer_id
            and snapshots.previous_month = invoice_balances.month
    where invoice_balances.is_overdue
    group by snapshots.customer_id, snapshots.month

),

-- The current life: of the subscriptions live at the snapshot, the one with
-- the highest MRR (the plan int_customer_months reports).
ranked_current_states as (

    select
        snapshots.customer_id,
        snapshots.month,
        snapshots.snapshot_at,
        subscription_states.subscription_id,
        subscription_states.life_started_at,
        subscription_states.billing_period,
        {{ dbt.datediff('subscription_states.life_started_at', 'snapshots.snapshot_at', 'month') }}
            as months_crossed,
        row_number() over (
            partition by snapshots.customer_id, snapshots.month
            order by subscription_states.mrr_amount desc nulls last, subscription_states.subscription_id asc
        ) as state_rank
    from snapshots
    inner join subscription_states
        on
            snapshots.customer_id = subscription_states.customer_id
            and snapshots.snapshot_at >= subscription_states.valid_from
            and (subscription_states.valid_to is null or snapshots.snapshot_at < subscription_states.valid_to)
    where subscription_states.is_live

),

-- Renewals survived, as int_sbg_survival counts a live life: whole billing
-- periods from the life's start (datediff counts month boundaries crossed; a
-- month is whole once its day and time are reached).
current_lives as (

    select
        customer_id,
        month,
        subscription_id,
        life_started_at,
        cast(floor(
            1.0 * (
                months_crossed
                - case
                    when {{ dbt.dateadd('month', 'months_crossed', 'life_started_at') }} > snapshot_at then 1
                    else 0
                end
            ) / {{ months_in_billing_period('billing_period') }}
        ) as {{ dbt.type_int() }}) as renewals_survived
    from ranked_current_states
    where state_rank = 1

),

drivers as (

    select
        snapshots.*,
        current_lives.subscription_id,
        current_lives.life_started_at,
        current_lives.renewals_survived,
        coalesce(event_counts.failed_payments, 0) as failed_payments,
        coalesce(event_counts.billing_complaints, 0) as billing_complaints,
        coalesce(event_counts.error_credit_notes, 0) as error_credit_notes,
        coalesce(event_counts.low_clarity_scores, 0) as low_clarity_scores,
        event_counts.lowest_clarity_score,
        latest_nps.latest_nps_score,
        case when latest_nps.latest_nps_score <= {{ risk['nps_detractor_max_score'] }} then 1 else 0 end
            as nps_detractor,
        coalesce(event_counts.downgrades, 0) as downgrades,
        coalesce(overdue_balances.overdue_balance_usd, 0) as overdue_balance_usd,
        -- an overdue balance with no known MRR counts as fully saturated
        case
            when coalesce(overdue_balances.overdue_balance_usd, 0) <= 0 then 0.0
            -- a double, divided as a double on every adapter (macros/cross_db/doubles.sql)
            when snapshots.mrr_start_usd > 0
                then cast(overdue_balances.overdue_balance_usd as double) / snapshots.mrr_start_usd
            else {{ risk['drivers']['overdue_mrr_multiple']['saturation'] }}
        end as overdue_mrr_multiple
    from snapshots
    left join current_lives
        on
            snapshots.customer_id = current_lives.customer_id
            and snapshots.month = current_lives.month
    left join event_counts
        on
            snapshots.customer_id = event_counts.customer_id
            and snapshots.month = event_counts.month
    left join latest_nps
        on
            snapshots.customer_id = latest_nps.customer_id
            and snapshots.month = latest_nps.month
    left join overdue_balances
        on
            snapshots.customer_id = overdue_balances.customer_id
            and snapshots.month = overdue_balances.month

),

contributions as (

    select
        *,
    {%- for driver in driver_names %}
        cast({{ risk['drivers'][driver]['weight'] }} as double)
        * least(1.0, cast({{ driver }} as double) / {{ risk['drivers'][driver]['saturation'] }})
        / (
            {%- for weighted in driver_names %}
                {{ risk['drivers'][weighted]['weight'] }}{{ ' +' if not loop.last }}
            {%- endfor %}
        ) as {{ driver }}_contribution{{ ',' if not loop.last }}
    {%- endfor %}
    from drivers

),

scored as (

    select
        *,
        {% for driver in driver_names -%}
            {{ driver }}_contribution{{ ' + ' if not loop.last }}
        {%- endfor %} as exact_risk_score,
        greatest(
            {%- for driver in driver_names %}
                {{ driver }}_contribution{{ ',' if not loop.last }}
            {%- endfor %}
        ) as top_contribution
    from contributions

),

-- One phrase per driver present; the counted ones share the window.
described as (

    select
        *,
        nullif(concat_ws(
            ', ',
            case
                when failed_payments > 0
                    then failed_payments || ' failed payment' || case when failed_payments > 1 then 's' else '' end
            end,
            case
                when billing_complaints > 0
                    then
                        billing_complaints || ' billing ticket' || case when billing_complaints > 1 then 's' else '' end
            end,
            case
                when error_credit_notes > 0
                    then
                        error_credit_notes || ' credit note' || case when error_credit_notes > 1 then 's' else '' end
                        || ' for a billing error'
            end,
            case
                when low_clarity_scores > 0
                    then
                        low_clarity_scores || ' low invoice-clarity score'
                        || case when low_clarity_scores > 1 then 's' else '' end
                        || ' (lowest ' || lowest_clarity_score || '/5)'
            end,
            case when nps_detractor = 1 then 'NPS detractor (' || latest_nps_score || '/10)' end,
            case
                when downgrades > 0
                    then downgrades || ' downgrade' || case when downgrades > 1 then 's' else '' end
            end
        ), '') as windowed_drivers,
        case
            when overdue_balance_usd > 0
                then
                    {{ number_as_text('overdue_balance_usd', 2) }} || ' USD overdue at the last month end'
                    || case
                        when mrr_start_usd > 0 then ' (' || {{ number_as_text('overdue_mrr_multiple', 1) }} || 'x MRR)'
                        else ''
                    end
        end as overdue_driver
    from scored

),

final as (

    select
        customer_id,
        month,
        snapshot_at,
        window_start_at,
        company_size,
        region,
        tier,
        billing_period,
        acquisition_channel,
        tenure_months,
        tenure_band,
        subscription_id,
        life_started_at,
        renewals_survived,
        mrr_start_usd,
        failed_payments,
        billing_complaints,
        error_credit_notes,
        low_clarity_scores,
        lowest_clarity_score,
        latest_nps_score,
        nps_detractor,
        downgrades,
        overdue_balance_usd,
        {{ round_double('overdue_mrr_multiple', 4) }} as overdue_mrr_multiple,
        {%- for driver in driver_names %}
            {{ round_double(driver ~ '_contribution', 4) }} as {{ driver }}_contribution,
        {%- endfor %}
        {{ round_double('exact_risk_score', 4) }} as risk_score,
        case
            {%- for driver in driver_names %}
                when top_contribution > 0 and {{ driver }}_contribution = top_contribution then '{{ driver }}'
            {%- endfor %}
        end as top_risk_driver,
        coalesce(
            nullif(
                concat_ws(
                    '; ',
                    windowed_drivers || ' in the last {{ risk["window_days"] }} days',
                    overdue_driver
                ),
                ''
            ),
            'none'
        ) as risk_drivers
    from described

)

select * from final
