{#- Accounts-receivable helpers shared by the invoice facts and KPI marts. -#}

{#- Whole numbers 0 .. 10^digits - 1 as `number`, from cross-joined digits:
    portable where generate_series is not (used for the month spine). -#}
{% macro whole_numbers(digits=3) -%}
    {%- set terms = [] -%}
    {%- for position in range(digits) -%}
        {%- do terms.append('digits_' ~ position ~ '.digit * ' ~ (10 ** position)) -%}
    {%- endfor -%}
    select {{ terms | join(' + ') }} as number
    from (
        select 0 as digit union all select 1 union all select 2 union all select 3 union all select 4
        union all select 5 union all select 6 union all select 7 union all select 8 union all select 9
    ) as digits_0
    {%- for position in range(1, digits) %}
    cross join (
        select 0 as digit union all select 1 union all select 2 union all select 3 union all select 4
        union all select 5 union all select 6 union all select 7 union all select 8 union all select 9
    ) as digits_{{ position }}
    {%- endfor %}
{%- endmacro %}

{#- AR aging bucket from whole days past due at the as-of date (metrics.md:
    current, 1-30, 31-60, 61-90, 90+). Not yet due or due that day is current. -#}
{% macro ar_aging_bucket(days_past_due) -%}
    case
        when {{ days_past_due }} <= 0 then 'current'
        when {{ days_past_due }} <= 30 then '1-30'
        when {{ days_past_due }} <= 60 then '31-60'
        when {{ days_past_due }} <= 90 then '61-90'
        else '90+'
    end
{%- endmacro %}

{#- Fails when a model's row count differs from another relation's: a fact
    built from one staging model must neither lose nor fan out its rows. -#}
{% test row_count_matches(model, compare_model) %}

with

model_rows as (

    select count(*) as row_count from {{ model }}

),

compare_rows as (

    select count(*) as row_count from {{ compare_model }}

)

select
    model_rows.row_count as model_row_count,
    compare_rows.row_count as compare_row_count
from model_rows
cross join compare_rows
where model_rows.row_count <> compare_rows.row_count

{% endtest %}
