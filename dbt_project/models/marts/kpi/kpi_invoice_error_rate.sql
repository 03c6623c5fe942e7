{#- One row per month x segment_dimension x segment_value: invoices issued in
    the month (not draft, void included), those with an error as of the run,
    and those flagged in marts.billing_anomalies (metrics.md). Segment = the
    invoice's (int_invoice_segments); every count keys on the issue month. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

segment_months as (

    select * from {{ ref('int_invoice_segment_months') }}

),

anomalies as (

    select * from {{ ref('billing_anomalies') }}

),

-- An invoice with any anomaly, of any type, on it or on one of its payments;
-- a missed invoice has no invoice and counts nowhere here.
flagged_invoices as (

    select distinct invoice_id
    from anomalies
    where invoice_id is not null

),

issued_invoices as (

    select
        invoices.issued_month as month,
        invoices.company_size,
        invoices.region,
        invoices.tier,
        invoices.billing_period,
        invoices.acquisition_channel,
        invoices.tenure_band,
        invoices.total_usd,
        case when invoices.is_error_invoice then 1 else 0 end as is_error_invoice,
        case when invoices.has_error_credit_note then 1 else 0 end as has_error_credit_note,
        case when invoices.has_error_ticket then 1 else 0 end as has_error_ticket,
        case when flagged_invoices.invoice_id is not null then 1 else 0 end as is_flagged
    from invoices
    left join flagged_invoices
        on invoices.invoice_id = flagged_invoices.invoice_id
    where invoices.status <> 'draft'

),

segmented as (

    {{ unpivot_segments('issued_invoices') }}

),

monthly as (

    select
        month,
        segment_dimension,
        segment_value,
        cast(count(*) as {{ dbt.type_int() }}) as invoices_issued,
        cast(sum(is_error_invoice) as {{ dbt.type_int() }}) as invoices_with_error,
        cast(sum(has_error_credit_note) as {{ dbt.type_int() }}) as invoices_with_error_credit_note,
        cast(sum(has_error_ticket) as {{ dbt.type_int() }}) as invoices_with_error_ticket,
        cast(sum(is_flagged) as {{ dbt.type_int() }}) as invoices_flagged,
        sum(total_usd) as invoiced_usd
    from segmented
    group by month, segment_dimension, segment_value

),

filled as (

    select
        segment_months.month,
        segment_months.segment_dimension,
        segment_months.segment_value,
        coalesce(monthly.invoices_issued, 0) as invoices_issued,
        coalesce(monthly.invoices_with_error, 0) as invoices_with_error,
        coalesce(monthly.invoices_with_error_credit_note, 0) as invoices_with_error_credit_note,
        coalesce(monthly.invoices_with_error_ticket, 0) as invoices_with_error_ticket,
        coalesce(monthly.invoices_flagged, 0) as invoices_flagged,
        coalesce(monthly.invoiced_usd, 0) as invoiced_usd
    from segment_months
    left join monthly
        on
            segment_months.month = monthly.month
            and segment_months.segment_dimension = monthly.segment_dimension
            and segment_months.segment_value = monthly.segment_value

),

final as (

    select
        month,
        segment_dimension,
        segment_value,
        invoices_issued,
        invoices_with_error,
        invoices_with_error_credit_note,
        invoices_with_error_ticket,
        invoices_flagged,
        invoiced_usd,
        case
            -- a double on every adapter (macros/cross_db/doubles.sql)
            when invoices_issued > 0
                then {{ round_double('cast(100 * invoices_with_error as double) / invoices_issued', 2) }}
        end as error_rate_per_100,
        case
            when invoices_issued > 0
                then {{ round_double('cast(100 * invoices_flagged as double) / invoices_issued', 2) }}
        end as anomalies_flagged_per_100
    from filled

)

select * from final
