{#- The MRR bridge closes on every row: start + new + expansion +
    reactivation - contraction - churned = end, to the cent and beyond. -#}
{% test mrr_bridge_closes(model) %}

select *
from {{ model }}
where
    mrr_start_usd + new_mrr_usd + expansion_mrr_usd + reactivation_mrr_usd
    - contraction_mrr_usd - churned_mrr_usd
    <> mrr_end_usd

{% endtest %}
