{#- Free-text comments are personal data: kept here for analysts with
    warehouse access, never published (dashboards and exports drop them). -#}
{{
    config(
        materialized='incremental',
        unique_key='response_id',
        incremental_strategy=upsert_strategy()
    )
}}

with

source as (

    {{ raw_rows_to_stage(source('raw', 'survey_responses'), 'response_id') }}

),

versioned as (

    select
        *,
        {{ version_rank(['response_id']) }} as version_rank
    from source

),

final as (

    select
        response_id,
        customer_id,
        survey,
        score,
        responded_at,
        invoice_id,
        comment,
        {{ restage_marker() }} as restaged_after_batch_id
    from versioned
    where version_rank = 1

)

select * from final
