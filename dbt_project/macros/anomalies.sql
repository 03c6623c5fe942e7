{#- Helpers of marts.billing_anomalies. -#}

{#- A money amount rounded half-up to its currency's minor unit: 0 decimals for
    the zero-decimal currencies (var zero_decimal_currencies, the contract's
    list), 2 for the others. DuckDB rounds a DECIMAL half away from zero, which
    is half-up for the non-negative amounts rounded here. -#}
{% macro round_to_minor_unit(amount_expression, currency_column) -%}
    case
        when {{ currency_column }} in ('{{ var("zero_decimal_currencies") | join("', '") }}')
            then round({{ amount_expression }}, 0)
        else round({{ amount_expression }}, 2)
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
            then cast(cast({{ amount_expression }} as decimal(18, 0)) as varchar)
        else cast(cast({{ amount_expression }} as decimal(18, 2)) as varchar)
    end
{%- endmacro %}
