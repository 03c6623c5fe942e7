{#- Rank the delivered versions of one key, newest first: the contract says
    a later updated_at wins, and without one the later batch (then the later
    row of that batch) wins. Rank 1 is the version staging keeps. -#}
{% macro version_rank(key_columns, version_column=none) -%}
    row_number() over (
        partition by {{ key_columns | join(', ') }}
        order by
            {% if version_column %}{{ version_column }} desc nulls last,
            {% endif %}_batch_id desc,
            _row_number desc
    )
{%- endmacro %}
