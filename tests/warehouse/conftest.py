"""The warehouse tests share the engine tests' one SparkSession (`spark`)."""

from tests.engine.conftest import spark

__all__ = ["spark"]
