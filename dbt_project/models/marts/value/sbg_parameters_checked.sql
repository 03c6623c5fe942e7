{#- The fitted rows of marts.sbg_parameters, read back through dbt. It proves
    the wiring for models that need the Python-written fit (kpi_clv): they
    sit downstream of the source `value.sbg_parameters`, so they build in
    the dbt op after the sbg_parameters asset. -#}
with

parameters as (

    select * from {{ source('value', 'sbg_parameters') }}

),

final as (

    select
        segment_dimension,
        segment_value,
        billing_period,
        alpha,
        beta,
        mean_churn_probability,
        discounted_expected_lifetime,
        n_lives,
        n_churned,
        fitted_at
    from parameters
    where status = 'fitted'

)

select * from final
