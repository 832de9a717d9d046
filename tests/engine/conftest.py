"""The one SparkSession of a test run (`local[2]`, started once, stopped at the end).

Spark tests are marked `spark`. Without PySpark or Java they skip with the reason — unless `CI`
is set, where they fail: in CI the Spark tests must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


def _spark_problem() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed (pip install -e '.[test]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Java is not installed (Spark needs it: apt-get install openjdk-17-jre-headless)"
    return None


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local[2] SparkSession shared by every Spark test."""
    problem = _spark_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"Spark tests must run in CI: {problem}")
        pytest.skip(problem)
    from leadscore.engine.batch.spark import session

    spark = session("local[2]", "leadscore-tests", **{
        "spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2",
        "spark.driver.memory": "2g", "spark.sql.execution.arrow.pyspark.enabled": "true"})
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()
