{#- Accounts-receivable helpers shared by the invoice facts and KPI marts. -#}

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
