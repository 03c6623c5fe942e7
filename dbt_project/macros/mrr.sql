{#- Helpers of the subscription / MRR models (int_subscription_*, int_customer_months). -#}

{#- Months in a billing period. The policy file states the same table
    (config/billing_policy.yml billing.months_per_period); it is not among the
    vars orchestration hands to dbt, so it is spelled out once, here. -#}
{% macro months_in_billing_period(billing_period_column) -%}
    case {{ billing_period_column }}
        when 'month' then 1
        when 'quarter' then 3
        when 'year' then 12
    end
{%- endmacro %}

{#- The numbers 0 .. 999 as `month_offset` (83 years of months), from
    cross-joined digits: a month spine with neither generate_series nor a
    recursive CTE (portable) nor a query at compile time (unit-testable). -#}
{% macro month_offsets() -%}
    {%- set digits = 'select ' ~ (range(10) | join(' as digit union all select ')) ~ ' as digit' -%}
    select units.digit + 10 * tens.digit + 100 * hundreds.digit as month_offset
    from ({{ digits }}) as units
    cross join ({{ digits }}) as tens
    cross join ({{ digits }}) as hundreds
{%- endmacro %}

{#- The reporting month a boundary instant belongs to. A month's flows are
    what changes between its first instant (exclusive) and the first instant
    of the next month (inclusive): the instants the stocks are measured at.
    So an event at exactly 00:00 on the 1st belongs to the month before. -#}
{% macro boundary_month(timestamp_expression) -%}
    {%- set month_start = dbt.date_trunc('month', timestamp_expression) -%}
    case when {{ timestamp_expression }} = {{ month_start }} then {{ dbt.dateadd('month', -1, month_start) }} else {{ month_start }} end
{%- endmacro %}
