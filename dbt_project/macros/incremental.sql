{#- Incremental runs (DECISIONS.md, "Incremental runs").

    Orchestration sets BILLING_RAW_BATCH_WATERMARK: the highest raw `_batch_id`
    that every incremental table already reflects (the watermark of the last
    successful build, meta.dbt_builds). Batch ids rise in load order across all
    sources (orchestration/lib/loader.py), so a raw row is new exactly when its
    `_batch_id` is above it. An environment variable, not a dbt var: a var that
    changes every run would make dbt re-parse the whole project every run.
    Without it (a `dbt build` by hand) nothing is assumed: every key counts as
    changed and the model is rebuilt whole, which is slower but exact. -#}

{% macro raw_batch_watermark() -%}
    {#- `is defined`: SQLFluff's templater has no env_var -#}
    {%- set watermark = (env_var('BILLING_RAW_BATCH_WATERMARK', '') if env_var is defined else '') | trim -%}
    {{ return(watermark | int if watermark else none) }}
{%- endmacro %}


{#- True when this build may touch only what changed: the table exists, the
    run is not a full refresh, and the watermark is known. -#}
{% macro is_partial_rebuild() -%}
    {%- set incremental = is_incremental() -%}
    {%- if incremental -%}
        {%- do assert_incremental_runs_supported() -%}
    {%- endif -%}
    {{ return(incremental and raw_batch_watermark() is not none) }}
{%- endmacro %}


{#- A staged row's lineage: the watermark of the incremental build that last
    (re)wrote it, null when a full build did. A row is new or changed for the
    models downstream exactly when it is at or above the current watermark
    (a failed build that wrote it used the same watermark). -#}
{% macro restage_marker() -%}
    {%- if is_partial_rebuild() -%}
        cast({{ raw_batch_watermark() }} as bigint)
    {%- else -%}
        cast(null as bigint)
    {%- endif -%}
{%- endmacro %}


{#- The rows of a staged relation that the running build (re)wrote. -#}
{% macro restaged_rows(relation) -%}
    select * from {{ relation }}
    where restaged_after_batch_id >= {{ raw_batch_watermark() }}
{%- endmacro %}


{#- The strategy that replaces the rows of the keys a build recomputes, in
    one place per adapter (docs/scaling.md, "Incremental strategy per
    engine"): DuckDB deletes the keys and inserts them again; Spark merges on
    the unique key, which needs a table format with row-level writes (Delta,
    Iceberg, Hudi: the var `spark_file_format`, which also sets every model's
    file_format in dbt_project.yml); other adapters merge.

    Read at parse time, where `config.get` sees nothing: hence the var, not
    the model's file_format config. -#}
{% macro upsert_strategy() -%}
    {{ return(adapter.dispatch('upsert_strategy', 'billing_analytics')()) }}
{%- endmacro %}

{% macro default__upsert_strategy() -%}
    {{ return('merge') }}
{%- endmacro %}

{% macro duckdb__upsert_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{#- Plain Parquet cannot replace rows by key. dbt-spark validates the
    strategy even when it only creates the table, so parquet gets `append`,
    a valid strategy that is never used to write: a build on an existing
    table stops in assert_incremental_runs_supported (a full build, the
    first or with --full-refresh, recreates the table). Append, not
    insert_overwrite, in case that guard is ever bypassed: duplicates fail
    the unique-key tests, an overwrite would drop rows silently. -#}
{% macro spark__upsert_strategy() -%}
    {{ return('merge' if spark_merges_rows() else 'append') }}
{%- endmacro %}

{% macro spark_merges_rows() -%}
    {{ return(var('spark_file_format', 'parquet') in ['delta', 'iceberg', 'hudi']) }}
{%- endmacro %}


{#- Stops an incremental build (the table exists, no --full-refresh) that
    the adapter's tables cannot take: on Spark with parquet, see above. -#}
{% macro assert_incremental_runs_supported() -%}
    {{ return(adapter.dispatch('assert_incremental_runs_supported', 'billing_analytics')()) }}
{%- endmacro %}

{% macro default__assert_incremental_runs_supported() -%}
    {{ return(none) }}
{%- endmacro %}

{% macro spark__assert_incremental_runs_supported() -%}
    {%- if not spark_merges_rows() -%}
        {%- do exceptions.raise_compiler_error(
            "Incremental build of " ~ this ~ " on Spark with file_format '"
            ~ var('spark_file_format', 'parquet') ~ "': plain Parquet tables cannot replace rows "
            ~ "by key, so an incremental run would duplicate or drop rows. Build with --full-refresh, "
            ~ "or store the tables as Delta or Iceberg (--vars '{spark_file_format: delta}', with the "
            ~ "format's jars on Spark) to get the merge strategy (docs/scaling.md)."
        ) -%}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}


{#- A staging model's raw rows. In a partial rebuild only those of the keys
    that received a raw row since the watermark, so the version rank is
    recomputed over all versions of exactly those keys (the same rule as a
    full build, on the same rows).

    A document converted to USD in staging (document_date given) also changes
    when its currency receives an FX rate, new or re-delivered, dated on or
    before the document: a rate dated d is the one to use from d until the
    next rate, so only documents dated d or later can convert differently.
    Those keys are taken from the staged table itself. -#}
{% macro raw_rows_to_stage(source_relation, key_column, document_date=none) -%}
    {%- if not is_partial_rebuild() %}
        select * from {{ source_relation }}
    {%- elif document_date %}
        select * from {{ source_relation }}
        where {{ key_column }} in (
            select delivered.{{ key_column }}
            from {{ source_relation }} as delivered
            where delivered._batch_id > {{ raw_batch_watermark() }}
            union all
            select staged.{{ key_column }}
            from {{ this }} as staged
            inner join (
                select
                    currency,
                    min(rate_date) as first_changed_rate_date
                from {{ ref('stg_finance__fx_rates') }}
                where batch_id > {{ raw_batch_watermark() }}
                group by currency
            ) as changed_rates
                on
                    staged.currency = changed_rates.currency
                    and staged.{{ document_date }} >= changed_rates.first_changed_rate_date
        )
    {%- else %}
        select * from {{ source_relation }}
        where {{ key_column }} in (
            select delivered.{{ key_column }}
            from {{ source_relation }} as delivered
            where delivered._batch_id > {{ raw_batch_watermark() }}
        )
    {%- endif %}
{%- endmacro %}


{#- A model's input rows: all of them in a full build; in a partial one those
    whose key is among `changed_keys` (a query), so the model recomputes the
    rows the new batches can change and the strategy replaces them by key. -#}
{% macro rows_to_rebuild(relation, key_column, changed_keys) -%}
    {%- if not is_partial_rebuild() %}
        select * from {{ relation }}
    {%- else %}
        select * from {{ relation }}
        where {{ key_column }} in ({{ changed_keys }})
    {%- endif %}
{%- endmacro %}


{#- Invoices whose payments changed in this build: the invoice of each restaged
    payment, and the invoice it was on before (read from the model's own table,
    `previous`), in case a new version moved the payment to another invoice. -#}
{% macro invoices_with_restaged_payments(previous) -%}
    select restaged_payments.invoice_id
    from ({{ restaged_rows(ref('stg_billing__payments')) }}) as restaged_payments
    union all
    select previous_rows.invoice_id
    from {{ previous }} as previous_rows
    inner join ({{ restaged_rows(ref('stg_billing__payments')) }}) as restaged_payments
        on previous_rows.payment_id = restaged_payments.payment_id
{%- endmacro %}
