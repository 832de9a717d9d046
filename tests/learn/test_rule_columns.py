"""One scoring run gives every rule's firing: the per-rule columns of `score_rules` agree with
scoring the model once per rule with that rule alone (the slow reference, `rule_models`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from leadscore import load_model
from leadscore.engine.batch import score_many, score_rules
from leadscore.engine.sql.plan import rule_column
from leadscore.learn.backtest import rule_models

ROOT = Path(__file__).parents[2]
AS_OF = "2026-06-30T00:00:00Z"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "benchmarks" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    folder = tmp_path_factory.mktemp("gen")
    generate.write_events(folder / "events.parquet", 60_000, 3_000, seed=7)
    generate.write_leads(folder / "leads.parquet", 3_000, seed=7)
    return str(folder / "events.parquet"), str(folder / "leads.parquet")


def test_per_rule_columns_equal_single_rule_runs(data: tuple[str, str]) -> None:
    # model-17 has every rule form: once, daily, weekly, cap, distinct, negative points, its own
    # half-life, no decay, page globs, bands, disqualifiers.
    events, leads = data
    model = load_model(ROOT / "benchmarks" / "model-17.yaml")
    one_pass = score_rules(model, events, leads, as_of=AS_OF).to_pandas().set_index("lead_id")
    full = score_many(model, events, leads, as_of=AS_OF).to_pandas().set_index("lead_id")
    # the scores themselves are those of score_many
    assert one_pass["score"].sort_index().tolist() == full["score"].sort_index().tolist()
    fired_somewhere = 0
    fit_index = {r.name: i for i, r in enumerate(model.fit)}
    eng_index = {r.name: i for i, r in enumerate(model.engagement.rules)}
    for name, kind, single in rule_models(model):
        alone = score_many(single, events, leads, as_of=AS_OF).to_pandas().set_index("lead_id")
        if kind == "engagement":
            column = one_pass[rule_column("engagement", eng_index[name])]
            assert column.reindex(alone.index).tolist() == pytest.approx(
                alone["engagement"].tolist(), abs=1e-9), name
            fired = column != 0
            expected = alone["score"] != 0
        elif kind == "fit":
            column = one_pass[rule_column("fit", fit_index[name])]
            fired, expected = column != 0, alone["score"] != 0
        else:
            fired = one_pass[rule_column("disqualify", fit_index[name])].astype(bool)
            expected = alone["disqualified"]
        assert set(fired[fired].index) == set(expected[expected].index), name
        fired_somewhere += bool(fired.any())
    assert fired_somewhere >= len(model.fit) // 2 + len(model.engagement.rules) // 2
