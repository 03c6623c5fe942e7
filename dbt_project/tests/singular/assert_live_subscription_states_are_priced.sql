{#- A live subscription state without a price-book price would count as MRR 0
    downstream and book a false churn (or false new MRR): fail the build
    instead, naming the states. -#}
select
    subscription_id,
    valid_from,
    plan_product_id,
    currency
from {{ ref('int_subscription_states') }}
where is_live and mrr_amount is null
