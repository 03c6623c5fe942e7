{#- One row per month x segment_dimension x segment_value: every segment value
    that any invoice is reported under, in every month of the history, so the
    invoice KPI marts show zeros rather than missing rows. -#}
with

segments as (

    select * from {{ ref('int_invoice_segments') }}

),

months as (

    select * from {{ ref('int_invoice_months') }}

),

segment_columns as (

    select
        company_size,
        region,
        tier,
        billing_period,
        acquisition_channel,
        tenure_band
    from segments

),

unpivoted as (

    {{ unpivot_segments('segment_columns') }}

),

segment_values as (

    select distinct
        segment_dimension,
        segment_value
    from unpivoted

),

final as (

    select
        months.month,
        segment_values.segment_dimension,
        segment_values.segment_value
    from months
    cross join segment_values

)

select * from final
