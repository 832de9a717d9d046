"""`leadscore` loads its engines on first use: importing the store or the ingest path does not
pull in DuckDB, sqlglot or pyarrow, and every export is still there."""

from __future__ import annotations

import subprocess
import sys

import pytest

import leadscore


def fresh(code: str) -> str:
    """What `code` prints in a fresh interpreter (nothing imported before it)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("module", ["leadscore.ingest.session", "leadscore.store", "leadscore"])
def test_importing_does_not_load_duckdb_sqlglot_or_pyarrow(module: str) -> None:
    assert fresh(f"import {module}, sys; print(sorted(m for m in ('duckdb','sqlglot','pyarrow') "
                 "if m in sys.modules))") == "[]"


def test_every_export_is_there() -> None:
    from leadscore.engine.batch import score_many
    from leadscore.engine.incremental import Scorer
    from leadscore.explain import explain

    assert leadscore.Scorer is Scorer
    assert leadscore.score_many is score_many
    assert leadscore.explain is explain
    assert set(leadscore.__all__) <= set(dir(leadscore))
    assert all(getattr(leadscore, name) is not None for name in leadscore.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        leadscore.nothing  # noqa: B018


def test_star_import_loads_the_engines() -> None:
    assert fresh("from leadscore import *; print(Scorer.__name__, score_many.__name__)") \
        == "Scorer score_many"
