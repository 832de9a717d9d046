"""Learn on a planted world: the YAML loads, scores through both engines as its points say,
and recovers the planted signs; honesty errors and warnings; outcomes labelling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore import Scorer, load_model, score_many
from leadscore.demo.planted import generate_planted_world
from leadscore.learn import LearnError, learn
from leadscore.learn.inputs import open_inputs


@pytest.fixture(scope="module")
def world():
    return generate_planted_world(3, leads=2500)


@pytest.fixture(scope="module")
def learned(world):
    return learn(world.events, world.leads, world.outcomes, as_of=world.cutoff(60),
                 min_conversions=30, half_lives=(14.0, 30.0))


def test_learned_yaml_loads_and_has_evidence(learned) -> None:
    model = load_model("x.yaml", text=learned.yaml)
    assert model.engagement.rules and model.fit
    assert model.thresholds.mql is not None
    assert "double the odds" in learned.yaml and "converted vs" in learned.yaml
    assert learned.test["split"] == "time split"
    assert 0.6 < learned.test["auc"] <= 1


def test_planted_signs_are_recovered(learned) -> None:
    rules = learned.rules.set_index("rule")
    assert rules.loc["Demo Requested", "coef"] > 0
    assert rules.loc["/pricing pages", "coef"] > 0
    assert rules.loc["/careers pages", "coef"] < 0
    assert rules.loc["job_level = vp", "coef"] > rules.loc["job_level = individual", "coef"]


def test_engine_score_is_points_times_features(learned) -> None:
    train = learned.train
    data = train["inputs"]
    expected = train["points_score"]
    scores = score_many(learned.model, data.events, data.leads, as_of=train["t_train"],
                        con=data.con).to_pandas().set_index("lead_id")
    ids = train["features"].lead_ids
    got = scores.loc[ids, "score"].to_numpy()
    # the cap of "every event" rules is rounded to 2 decimals in the YAML
    assert np.abs(got - expected).max() < 0.05


def test_a_training_window_shorter_than_twice_the_horizon_is_refused(world) -> None:
    with pytest.raises(LearnError, match=r"training window is too short: 2\d days .* less "
                                         r"than twice the 30-day horizon"):
        learn(world.events, world.leads, world.outcomes, as_of=world.cutoff(155),
              min_conversions=5, half_lives=(30.0,))


def test_incremental_engine_agrees(world, learned) -> None:
    scorer = Scorer(learned.model)
    events = world.events.to_pandas()
    events = events[events["timestamp"] <= pd.Timestamp(world.cutoff(30))]
    leads = {row["lead_id"]: row for row in world.leads.to_pylist()}   # plain Python values
    chosen = events["lead_id"].drop_duplicates().iloc[:15].tolist()
    for lead_id in chosen:
        row = leads[lead_id]
        traits = {k: v for k, v in row.items()
                  if k != "lead_id" and not k.startswith("account.") and v is not None}
        scorer.identify(lead_id, traits, {k[8:]: v for k, v in row.items()
                                          if k.startswith("account.") and v is not None},
                        as_of="2025-01-01T00:00:00Z")
        for row in events[events["lead_id"] == lead_id].itertuples():
            message = {"type": row.type, "userId": lead_id,
                       "timestamp": row.timestamp.isoformat()}
            if row.type == "page":
                message["properties"] = {"path": row.path}
            else:
                message["event"] = row.event
            scorer.update_one(message)
    batch = score_many(learned.model, world.events, world.leads,
                       as_of=world.cutoff(30)).to_pandas().set_index("lead_id")
    for lead_id in chosen:
        one = scorer.score(lead_id, as_of=world.cutoff(30))
        assert one.score == pytest.approx(batch.loc[lead_id, "score"], abs=1e-6)


def test_too_few_conversions_is_a_clear_error(world) -> None:
    with pytest.raises(LearnError, match=r"only \d+ of .* at least 5000 conversions"):
        learn(world.events, world.leads, world.outcomes, as_of=world.cutoff(60),
              min_conversions=5000, half_lives=(30.0,))


def test_traits_only_learning_and_a_leakage_warning() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.random(n) < 0.1
    leads = pd.DataFrame({"lead_id": [f"l{i}" for i in range(n)],
                          "plan": np.where(rng.random(n) < 0.5, "pro", "free"),
                          "seats": rng.integers(1, 500, n),
                          "crm_stage": np.where(y, "closed won", "open")})    # a leak
    outcomes = pd.DataFrame({"lead_id": leads["lead_id"], "converted": y.astype(int)})
    learned = learn(None, leads, outcomes, min_conversions=30)
    assert any("crm_stage" in w and "leakage" in w for w in learned.warnings)
    assert learned.test["split"] == "5-fold cross-validation"
    assert learned.test["leads"] == n
    assert not load_model("t.yaml", text=learned.yaml).engagement.rules


def test_outcome_labels_respect_the_cut_off_and_window(tmp_path) -> None:
    events = pd.DataFrame({"lead_id": ["a", "b", "c", "d"],
                           "timestamp": ["2026-01-01T00:00:00Z"] * 4, "event": ["Visit"] * 4})
    (tmp_path / "o.csv").write_text("lead_id,converted_at\na,2025-12-01T00:00:00Z\n"
                                    "b,2026-01-10T00:00:00Z\nc,2026-03-01T00:00:00Z\n")
    data = open_inputs(events, None, str(tmp_path / "o.csv"))
    data.population(1767225600000000 + 1, "pop")
    data.labels("pop", 1767225600000000 + 1, 30, "lab")
    got = dict(data.con.sql("SELECT lead_id, converted FROM lab").fetchall())
    assert got == {"b": 1, "c": 0, "d": 0}           # a converted before: left out
