{#- Schemas are named raw / staging / intermediate / marts exactly (no
    target-schema prefix), so analysts find marts.kpi_dso where the spec says. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
