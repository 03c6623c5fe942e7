{#- The contract's FX rule: a document converts at the rate of its date, or
    the latest earlier rate when that date has none. stg_finance__fx_rates
    carries each rate's validity window [valid_from, valid_to), so the lookup
    is an equality on currency plus a range on the date. -#}
{% macro fx_rate_join(fx_alias, currency_column, date_expression) -%}
    {{ fx_alias }}.currency = {{ currency_column }}
    and {{ date_expression }} >= {{ fx_alias }}.valid_from
    and ({{ fx_alias }}.valid_to is null or {{ date_expression }} < {{ fx_alias }}.valid_to)
{%- endmacro %}

{#- USD itself needs no rate row. -#}
{% macro usd_per_unit(fx_alias, currency_column) -%}
    case when {{ currency_column }} = 'USD' then 1.0 else {{ fx_alias }}.usd_per_unit end
{%- endmacro %}

{#- The rate is a double, so is the product: rounded as DuckDB rounds a double
    on every adapter (macros/cross_db/doubles.sql). -#}
{% macro to_usd(amount_column, rate_column='usd_per_unit') -%}
    cast({{ round_double(amount_column ~ ' * ' ~ rate_column, 4) }} as decimal(18, 4))
{%- endmacro %}
