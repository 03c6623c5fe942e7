{#- The KPI marts are long: one row per month x segment_dimension x
    segment_value (metrics.md). A CTE that carries one column per dimension
    (company_size, region, tier, billing_period, acquisition_channel,
    tenure_band) is fanned out here into one row per dimension, plus `all`.
    Rows with a null attribute are kept under the value 'unknown' so that
    every dimension partitions the same population as `all`. -#}
{% macro segment_dimensions() -%}
    {{ return(['company_size', 'region', 'tier', 'billing_period', 'acquisition_channel', 'tenure_band']) }}
{%- endmacro %}

{% macro unpivot_segments(cte_name) -%}
    select
        {{ cte_name }}.*,
        'all' as segment_dimension,
        'all' as segment_value
    from {{ cte_name }}
    {%- for dimension in segment_dimensions() %}
    union all
    select
        {{ cte_name }}.*,
        '{{ dimension }}' as segment_dimension,
        coalesce(cast({{ dimension }} as {{ dbt.type_string() }}), 'unknown') as segment_value
    from {{ cte_name }}
    {%- endfor %}
{%- endmacro %}

{#- Tenure bands of metrics.md, from whole months since the first subscription. -#}
{% macro tenure_band(months_expression) -%}
    case
        when {{ months_expression }} is null then null
        when {{ months_expression }} < 3 then '0-3m'
        when {{ months_expression }} < 12 then '3-12m'
        when {{ months_expression }} < 24 then '12-24m'
        else '24m+'
    end
{%- endmacro %}

{#- Whole months of tenure at a month's first instant: calendar months
    between the two month starts, less one when the start fell after its
    month's first instant; 0 for a start at or after the month start. -#}
{% macro tenure_months(started_at, month_start) -%}
    case
        when {{ started_at }} is null then null
        when {{ started_at }} >= {{ month_start }} then 0
        else
            {{ dbt.datediff(dbt.date_trunc('month', started_at), month_start, 'month') }}
            - case when {{ started_at }} > {{ dbt.date_trunc('month', started_at) }} then 1 else 0 end
    end
{%- endmacro %}
