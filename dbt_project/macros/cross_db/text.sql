{#- Numbers as text, the same on every adapter (docs/scaling.md, "Dialect differences"). -#}

{#- A number as text with a fixed number of decimals, rounded half-up exactly:
    '1234.50', '1.3' for 1.25. printf('%.2f') is not portable: DuckDB formats
    the nearest double (2.675 -> '2.67'), Spark has no printf for decimals and
    Java's format_string rounds 2.675 up. An exact decimal round then a cast
    to text says the same on both. Positive and negative numbers alike. -#}
{% macro number_as_text(number_expression, decimals) -%}
    cast(cast(round(cast({{ number_expression }} as decimal(38, 10)), {{ decimals }}) as decimal(38, {{ decimals }})) as {{ dbt.type_string() }})
{%- endmacro %}
