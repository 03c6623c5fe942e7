{#- Arithmetic on doubles that DuckDB and Spark spell the same but compute
    differently (docs/scaling.md, "Dialect differences").

    Division: DuckDB divides decimals as doubles (decimal / anything is a
    DOUBLE); Spark divides them as decimals (exact, another type). The models
    therefore cast the numerator to double before every division whose
    result is a double: DuckDB does the very same conversion implicitly, so
    its results do not move, and Spark computes the same doubles.

    Rounding a double to n places: DuckDB computes round(x * 10^n) / 10^n on
    the binary value; Spark's round rounds the shortest decimal text of x
    half-up, so the two disagree on values a hair below a tie (126.68625 as
    the double 126.686249999... is 126.6862 on DuckDB, 126.6863 on Spark).
    round_double spells DuckDB's rule on Spark: round(x * 10^n, 0) gives the
    same integer on both (a double that is not exactly k + 0.5 has no
    shortest text that is), and the division is one IEEE operation. -#}
{% macro round_double(double_expression, places) -%}
    {{ return(adapter.dispatch('round_double', 'billing_analytics')(double_expression, places)) }}
{%- endmacro %}

{% macro default__round_double(double_expression, places) -%}
    round({{ double_expression }}, {{ places }})
{%- endmacro %}

{% macro spark__round_double(double_expression, places) -%}
    (round(({{ double_expression }}) * {{ 10 ** places }}, 0) / {{ 10 ** places }})
{%- endmacro %}
