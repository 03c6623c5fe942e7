{#- Integer arithmetic that DuckDB and Spark spell differently (docs/scaling.md,
    "Dialect differences"). -#}

{#- An integer type wide enough for money in minor units times days: DuckDB's
    128-bit hugeint; Spark has no 128-bit integer, and its bigint (up to 9.2e18)
    holds any amount the contract allows (DECIMAL(18, 4)) in cents times 366 days. -#}
{% macro type_wide_integer() -%}
    {{ return(adapter.dispatch('type_wide_integer', 'billing_analytics')()) }}
{%- endmacro %}

{% macro default__type_wide_integer() -%}
    {{ return(dbt.type_bigint()) }}
{%- endmacro %}

{% macro duckdb__type_wide_integer() -%}
    {{ return('hugeint') }}
{%- endmacro %}


{#- The whole quotient of two non-negative integers: DuckDB's `//`, Spark's
    `div`; elsewhere the floor of the quotient. -#}
{% macro integer_divide(numerator, denominator) -%}
    {{ return(adapter.dispatch('integer_divide', 'billing_analytics')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__integer_divide(numerator, denominator) -%}
    cast(floor(({{ numerator }}) / ({{ denominator }})) as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro duckdb__integer_divide(numerator, denominator) -%}
    (({{ numerator }}) // ({{ denominator }}))
{%- endmacro %}

{% macro spark__integer_divide(numerator, denominator) -%}
    (({{ numerator }}) div ({{ denominator }}))
{%- endmacro %}
