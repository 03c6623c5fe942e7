{#- A composite-key uniqueness test (dbt_utils is not reachable here, so we
    keep our own): fails with one row per duplicated combination. -#}
{% test unique_combination_of_columns(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as rows_with_this_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
