{#- Helpers of marts.billing_anomalies. -#}

{#- A money amount rounded half-up to its currency's minor unit: 0 decimals for
    the zero-decimal currencies (var zero_decimal_currencies, the contract's
    list), 2 for the others. DuckDB rounds a DECIMAL half away from zero, which
    is half-up for the non-negative amounts rounded here. Each branch is cast
    to DECIMAL(18, 4): DuckDB would otherwise unify a wide DECIMAL(38, 0) and
    DECIMAL(38, 2) into DECIMAL(38, 1) and drop a cent. -#}
{% macro round_to_minor_unit(amount_expression, currency_column) -%}
    case
        when {{ currency_column }} in ('{{ var("zero_decimal_currencies") | join("', '") }}')
            then cast(round({{ amount_expression }}, 0) as decimal(18, 4))
        else cast(round({{ amount_expression }}, 2) as decimal(18, 4))
    end
{%- endmacro %}

{#- The severity of an anomaly type: var anomaly_severity (config/billing_policy.yml
    anomalies.severity), `warn` for a type it does not list. -#}
{% macro anomaly_severity(anomaly_type_column) -%}
    {%- set severity = var('anomaly_severity') or {} -%}  {#- None while parsing -#}
    case {{ anomaly_type_column }}
    {%- for anomaly_type in severity %}
        when '{{ anomaly_type }}' then '{{ severity[anomaly_type] }}'
    {%- endfor %}
        else 'warn'
    end
{%- endmacro %}

{#- A money amount as text in its currency's minor unit ('1235', '13.13'),
    the form of the generator's truth and of an invoice. -#}
{% macro money_as_text(amount_expression, currency_column) -%}
    case
        when {{ currency_column }} in ('{{ var("zero_decimal_currencies") | join("', '") }}')
            then cast(cast({{ amount_expression }} as decimal(18, 0)) as {{ dbt.type_string() }})
        else cast(cast({{ amount_expression }} as decimal(18, 2)) as {{ dbt.type_string() }})
    end
{%- endmacro %}

{#- The loyalty discount the policy gives a recurring line: var
    loyalty_discount_rate of the amount, half-up to the minor unit, when due;
    else 0. -#}
{% macro policy_discount_amount(amount_expression, is_due_expression, currency_column) -%}
    case
        when {{ is_due_expression }}
            then {{ round_to_minor_unit('(' ~ amount_expression ~ ') * ' ~ var('loyalty_discount_rate'), currency_column) }}
        else 0
    end
{%- endmacro %}

{#- The tax the policy charges on a line: the country rate on the net amount
    (amount - discount), half-up to the minor unit. -#}
{% macro policy_tax_amount(net_amount_expression, tax_rate_expression, currency_column) -%}
    {{ round_to_minor_unit('(' ~ net_amount_expression ~ ') * ' ~ tax_rate_expression, currency_column) }}
{%- endmacro %}

{#- The policy's proration: round half-up(amount x remaining_days / period_days)
    to the minor unit, computed exactly in integer minor units (a float would
    let a half cent round either way; the generator works in minor units too).
    Symmetric for a negative amount (half away from zero). -#}
{% macro prorate_half_up(amount_expression, remaining_days, period_days, currency_column) -%}
    {%- set is_zero_decimal -%}
        {{ currency_column }} in ('{{ var("zero_decimal_currencies") | join("', '") }}')
    {%- endset -%}
    {%- set minor_units -%}
        cast(round(({{ amount_expression }}) * case when {{ is_zero_decimal }} then 1 else 100 end, 0) as {{ type_wide_integer() }})
        * ({{ remaining_days }})
    {%- endset -%}
    cast(
        cast(
            sign({{ minor_units }})
            * {{ integer_divide('2 * abs(' ~ minor_units ~ ') + (' ~ period_days ~ ')', '2 * (' ~ period_days ~ ')') }}
            as decimal(18, 0)
        )
        * case when {{ is_zero_decimal }} then 1.00 else 0.01 end
        as decimal(18, 4)
    )
{%- endmacro %}

{#- The join condition of a price-book row (stg_billing__products) for a
    product and currency valid on a date: valid_from <= date < valid_to, the
    latest row when valid_to is open. -#}
{% macro price_book_join(prices_alias, product_column, currency_column, date_expression) -%}
    {{ prices_alias }}.product_id = {{ product_column }}
    and {{ prices_alias }}.currency = {{ currency_column }}
    and {{ date_expression }} >= {{ prices_alias }}.valid_from
    and ({{ prices_alias }}.valid_to is null or {{ date_expression }} < {{ prices_alias }}.valid_to)
{%- endmacro %}
