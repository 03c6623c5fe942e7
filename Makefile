# Two commands matter: `make demo` and `make test`. Both bootstrap .venv the
# first time (about a minute) and are quick afterwards. `make test-spark` builds
# the dbt project on Apache Spark and checks its marts equal DuckDB's (own .venv-spark).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SPARK_VENV := .venv-spark
SPARK_INSTALLED := $(SPARK_VENV)/.installed
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/seeds dbt_project/tests -type f 2>/dev/null) \
	dbt_project/dbt_project.yml dbt_project/profiles.yml

.PHONY: demo test test-spark lint ui venv manifest clean bench bench-300k

demo: $(INSTALLED) $(MANIFEST)
	$(BIN)/billing-analytics demo

test: $(INSTALLED) $(MANIFEST)
	$(BIN)/python -m pytest

# The dbt project built on Apache Spark (dbt-spark, session method) equals DuckDB's
# marts, on the demo world (docs/scaling.md). Its own environment .venv-spark (pyspark,
# dbt-spark; Java 17 on the machine): the first run creates it (a few minutes), later
# runs reuse it.
test-spark: $(SPARK_INSTALLED)
	$(SPARK_VENV)/bin/python -m pytest -m spark tests/spark

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project/models dbt_project/macros dbt_project/tests

ui: $(INSTALLED) $(MANIFEST)
	mkdir -p .dagster_home && cp config/dagster.yaml .dagster_home/dagster.yaml
	PATH=$(CURDIR)/$(BIN):$$PATH DAGSTER_HOME=$(CURDIR)/.dagster_home $(BIN)/dagster dev -h 127.0.0.1 -p 3000

venv: $(INSTALLED)
manifest: $(MANIFEST)

# The scale ladder (1k, 10k, 100k customers x 36 months) -> docs/reports/scale.{md,json};
# e.g. make bench BENCH_ARGS='--note "quiet machine"'
bench: $(INSTALLED) $(MANIFEST)
	$(BIN)/python benchmarks/scale.py $(BENCH_ARGS)

bench-300k: $(INSTALLED) $(MANIFEST)
	$(BIN)/python benchmarks/scale.py --include-300k $(BENCH_ARGS)

$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

$(SPARK_INSTALLED): pyproject.toml constraints.txt
	@test -x $(SPARK_VENV)/bin/python || $(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SPARK_VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[dev,spark]"
	@touch $@

# dagster-dbt reads the manifest when the definitions are imported.
$(MANIFEST): $(INSTALLED) $(DBT_SOURCES)
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .
	@touch $@

clean:
	rm -rf data dbt_project/target dbt_project/logs .pytest_cache
