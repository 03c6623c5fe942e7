"""The Spark session of the `spark` dbt target, for the Python steps that run beside dbt on Spark.

dbt-spark's `session` method starts Spark inside the dbt process with the target's
`server_side_parameters` (dbt_project/profiles.yml). The raw export (spark_raw) and the
sBG fit on Spark (spark_value) must see the same catalog and warehouse folder, so they
start Spark from that very block, rendered by dbt's own profile renderer: one place
says where the tables live and how Spark is sized.

pyspark is imported only when a session is started: it is installed in the Spark
environment (`make test-spark`, the `spark` extra), not in the lean main one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from orchestration.lib.settings import DBT_PROJECT_DIR, PROJECT_ROOT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Where the Spark warehouse (parquet tables, the Derby metastore, raw exports) lives.
SPARK_WAREHOUSE_VARIABLE = "BILLING_SPARK_WAREHOUSE_DIR"
DEFAULT_SPARK_WAREHOUSE_DIR = PROJECT_ROOT / "data" / "spark-warehouse"
PROFILE_NAME = "billing_analytics"
SPARK_TARGET = "spark"
# dbt-spark sets this on every session it opens (SparkCredentials.__post_init__): non-ANSI
# casts and arithmetic. A Python step must compute under the same rules.
DBT_SPARK_FORCED_PARAMETERS = {"spark.sql.ansi.enabled": "false"}


def spark_warehouse_dir() -> Path:
    """BILLING_SPARK_WAREHOUSE_DIR, absolute; default data/spark-warehouse under the project root
    (the profile's own default, `../data/spark-warehouse` from dbt_project/, is the same folder)."""
    value = os.environ.get(SPARK_WAREHOUSE_VARIABLE) or str(DEFAULT_SPARK_WAREHOUSE_DIR)
    path = Path(value).expanduser()
    return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()


def export_spark_warehouse_dir(warehouse_dir: Path) -> Path:
    """Set BILLING_SPARK_WAREHOUSE_DIR to an absolute path for this process and the dbt it runs:
    the profile's relative default would resolve against whatever folder dbt runs in."""
    path = warehouse_dir.expanduser().resolve()
    os.environ[SPARK_WAREHOUSE_VARIABLE] = str(path)
    return path


def spark_target_parameters(profiles_dir: Path = DBT_PROJECT_DIR) -> dict[str, str]:
    """The `spark` target's server_side_parameters, rendered as dbt renders them (env_var and all),
    plus the parameters dbt-spark forces."""
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    profiles_path = profiles_dir / "profiles.yml"
    profiles = yaml.safe_load(profiles_path.read_text())
    try:
        target = profiles[PROFILE_NAME]["outputs"][SPARK_TARGET]
    except KeyError as error:
        raise KeyError(f"{profiles_path} has no target {PROFILE_NAME}.outputs.{SPARK_TARGET}") from error
    # dbt's env_var() reads the invocation context, which dbt sets up per command.
    set_invocation_context(os.environ)
    rendered: dict[str, Any] = ProfileRenderer({}).render_data(target)
    parameters = {str(key): str(value) for key, value in rendered.get("server_side_parameters", {}).items()}
    return {**parameters, **DBT_SPARK_FORCED_PARAMETERS}


JAVA_HINT = (
    "Spark needs a Java runtime (17 or 21) and finds none: no JAVA_HOME and no `java` on PATH. "
    "On Debian/Ubuntu: apt-get install openjdk-17-jre-headless (.ci/run does this on CI)."
)


def require_java() -> None:
    """Fail with an install hint, not a py4j stack trace, when no Java runtime is available."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return
    if shutil.which("java") is None:
        raise RuntimeError(JAVA_HINT)


def start_spark(warehouse_dir: Path | None = None) -> SparkSession:
    """The Spark session of the `spark` dbt target (Hive catalog, as dbt-spark opens it).

    One embedded Derby metastore admits one JVM at a time: a second process (dbt by hand) on the
    same BILLING_SPARK_WAREHOUSE_DIR waits for this one to stop. dbt run in this process
    (dbtRunner) gets this session back from getOrCreate()."""
    from pyspark.sql import SparkSession

    require_java()
    root = export_spark_warehouse_dir(warehouse_dir or spark_warehouse_dir())
    root.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_target_parameters().items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
