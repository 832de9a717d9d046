"""The test run's one local[2] SparkSession (see tests/engine/conftest.py) for the segment
tests marked `spark`."""

from tests.engine.conftest import spark

__all__ = ["spark"]
