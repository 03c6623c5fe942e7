{#- One row per invoice: the segment it is reported under in the invoice KPIs.
    Plan tier and billing period are the invoice's own at issue: its plan line's
    product, or, for an invoice without a plan line (an add-on upgrade), the
    plan of the subscription's latest earlier invoice that has one. Customer
    attributes come from dim_customers; tenure is the whole months elapsed
    from the first subscription to the first instant of the issue month
    (metrics.md: at the start of the month; 0 in the first month), counted as
    int_customer_months counts it, so both marts band a customer alike. -#}
with

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

invoice_lines as (

    select * from {{ ref('stg_billing__invoice_lines') }}

),

products as (

    select * from {{ ref('stg_billing__products') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

-- tier and billing period describe the product, not one of its prices:
-- take them from its latest price-book row, one row per product
ranked_products as (

    select
        product_id,
        product_type,
        tier,
        billing_period,
        row_number() over (
            partition by product_id
            order by valid_from desc, currency asc
        ) as book_rank
    from products

),

product_attributes as (

    select
        product_id,
        product_type,
        tier,
        billing_period
    from ranked_products
    where book_rank = 1

),

ranked_plan_lines as (

    select
        invoice_lines.invoice_id,
        invoice_lines.product_id,
        product_attributes.tier,
        product_attributes.billing_period,
        row_number() over (
            partition by invoice_lines.invoice_id
            order by invoice_lines.is_proration asc, invoice_lines.period_start desc, invoice_lines.line_id asc
        ) as plan_line_rank
    from invoice_lines
    inner join product_attributes
        on invoice_lines.product_id = product_attributes.product_id
    where product_attributes.product_type = 'plan'

),

invoice_plans as (

    select
        invoice_id,
        product_id as plan_product_id,
        tier,
        billing_period
    from ranked_plan_lines
    where plan_line_rank = 1

),

subscription_plan_history as (

    select
        invoices.subscription_id,
        invoices.invoice_id,
        invoices.issued_at,
        invoice_plans.plan_product_id,
        invoice_plans.tier,
        invoice_plans.billing_period
    from invoices
    inner join invoice_plans
        on invoices.invoice_id = invoice_plans.invoice_id
    where invoices.subscription_id is not null

),

ranked_inherited_plans as (

    select
        invoices.invoice_id,
        subscription_plan_history.plan_product_id,
        subscription_plan_history.tier,
        subscription_plan_history.billing_period,
        row_number() over (
            partition by invoices.invoice_id
            order by subscription_plan_history.issued_at desc, subscription_plan_history.invoice_id desc
        ) as recency_rank
    from invoices
    inner join subscription_plan_history
        on
            invoices.subscription_id = subscription_plan_history.subscription_id
            and invoices.issued_at >= subscription_plan_history.issued_at
            and invoices.invoice_id <> subscription_plan_history.invoice_id
    left join invoice_plans
        on invoices.invoice_id = invoice_plans.invoice_id
    where invoice_plans.invoice_id is null

),

inherited_plans as (

    select
        invoice_id,
        plan_product_id,
        tier,
        billing_period
    from ranked_inherited_plans
    where recency_rank = 1

),

invoice_months as (

    select
        invoice_id,
        customer_id,
        subscription_id,
        cast({{ dbt.date_trunc('month', 'issued_at') }} as date) as issued_month
    from invoices

),

-- whole months since the first subscription at the issue month's first instant
tenures as (

    select
        invoice_months.invoice_id,
        {{ tenure_months('customers.first_subscription_at', 'invoice_months.issued_month') }} as tenure_months
    from invoice_months
    left join customers
        on invoice_months.customer_id = customers.customer_id

),

final as (

    select
        invoice_months.invoice_id,
        invoice_months.customer_id,
        invoice_months.subscription_id,
        invoice_months.issued_month,
        coalesce(invoice_plans.plan_product_id, inherited_plans.plan_product_id) as plan_product_id,
        coalesce(invoice_plans.tier, inherited_plans.tier) as tier,
        coalesce(invoice_plans.billing_period, inherited_plans.billing_period) as billing_period,
        case
            when invoice_plans.invoice_id is not null then 'plan_line'
            when inherited_plans.invoice_id is not null then 'earlier_invoice'
        end as plan_source,
        customers.company_size,
        customers.region,
        customers.acquisition_channel,
        tenures.tenure_months,
        {{ tenure_band('tenures.tenure_months') }} as tenure_band
    from invoice_months
    left join invoice_plans
        on invoice_months.invoice_id = invoice_plans.invoice_id
    left join inherited_plans
        on invoice_months.invoice_id = inherited_plans.invoice_id
    left join customers
        on invoice_months.customer_id = customers.customer_id
    left join tenures
        on invoice_months.invoice_id = tenures.invoice_id

)

select * from final
