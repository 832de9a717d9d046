"""The stream agreement on Spark (fewer examples than DuckDB's, tests/test_stream_agreement.py):
the service (SQLite) fed a generated stream in time order equals Spark scoring the same
messages, shuffled, from one JSON-lines file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import fresh_store_url
from tests.test_stream_agreement import (
    NOW,
    assert_same,
    batch_scores,
    service_scores,
    streams,
)

# Spark reads Segment JSON now (i15-spark, merged); this run did not finish within 20 minutes on
# the shared machine before the deadline, so it has not been seen passing: skipped until it is.
pytestmark = [pytest.mark.spark, pytest.mark.skip(
    reason="not yet seen passing: 5 examples did not finish in 20 min on the loaded machine")]


def test_the_service_equals_spark_on_the_shuffled_file(spark: Any, tmp_path: Path) -> None:
    @settings(max_examples=5, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages=streams(max_size=16), seed=st.integers(0, 2**16))
    def check(messages: list[dict[str, Any]], seed: int) -> None:
        with fresh_store_url("sqlite") as url:
            live = service_scores(url, messages, NOW, seed)
        assert_same(live, batch_scores(messages, NOW, seed, tmp_path, spark), messages)

    check()
