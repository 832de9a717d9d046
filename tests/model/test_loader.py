from __future__ import annotations

from pathlib import Path

import pytest

from leadscore import ModelError, load_model, load_models

EXAMPLE = Path(__file__).parents[2] / "examples" / "b2c-art-supplies.yaml"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_design_example_loads_with_every_section() -> None:
    model = load_model(EXAMPLE)
    assert model.name == "b2c-art-supplies"
    assert model.timezone == "Europe/Berlin"
    assert [r.name for r in model.fit][:2] == ["core age band", "gave birthday"]
    assert model.engagement.decay is not None and model.engagement.decay.half_life_days == 30
    # `on:` is a key here, not the YAML 1.1 boolean
    first = model.lifecycle[0].on
    assert first is not None and first.event == "Newsletter Subscribed"
    assert model.tests[0].as_of == "2026-05-10T00:00:00Z"


BAD = """\
name: bad
timezone: Europe/Berln
fit:
  - name: a
    when: {age: {equal: 5}}
    pionts: 3
engagement:
  rules:
    - {name: x, event: E, points: 1, limit: dayly}
    - {name: y, page: /x*, points: 1, where: {properties.a: {regex: "("}}}
lifecycle:
  - {stage: custmer, on: {event: X}}
"""


def test_every_problem_is_reported_at_once_with_line_key_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    with pytest.raises(ModelError) as info:
        load_model(path)
    problems = {p.key: p for p in info.value.problems}
    assert set(problems) == {
        "timezone", "fit[0].when.age.equal", "fit[0].pionts", "engagement.rules[0].limit",
        "engagement.rules[1].where.properties.a.regex", "lifecycle[0].stage",
    }
    assert problems["fit[0].pionts"].line == 6
    assert problems["fit[0].pionts"].suggestion == "points"
    assert problems["fit[0].when.age.equal"].suggestion == "eq"
    assert problems["fit[0].when.age.equal"].line == 5
    assert problems["engagement.rules[0].limit"].suggestion == "daily"
    assert problems["lifecycle[0].stage"].suggestion == "customer"
    assert problems["timezone"].line == 2
    text = str(info.value)
    assert f"{path}:6: fit[0].pionts: unknown key 'pionts'" in text
    assert "Did you mean 'points'?" in text
    # The accepted values are said once, as the README shows them.
    assert ("engagement.rules[0].limit: Input should be 'once', 'daily' or 'weekly' (got "
            "'dayly'). Did you mean 'daily'?") in text


@pytest.mark.parametrize(("snippet", "key", "fragment"), [
    ("fit:\n  - {name: a, when: {age: {range: [10]}}, points: 1}\n", "fit[0].when.age.range",
     "two numbers"),
    ("fit:\n  - {name: a, when: {age: {in: 5}}, points: 1}\n", "fit[0].when.age.in", "list"),
    ("fit:\n  - {name: a, when: {}, points: 1}\n", "fit[0].when", "non-empty"),
    ("fit:\n  - {name: a, points: 1}\n", "fit[0]", "needs `when`"),
    ("engagement:\n  rules:\n    - {name: a, points: 1}\n", "engagement.rules[0]",
     "exactly one of `event`"),
    ("engagement:\n  rules:\n    - {name: a, event: X, points: 1, cap: -3}\n",
     "engagement.rules[0].cap", "greater than 0"),
    ("thresholds: {mql: 3, mql_requires_grade: C}\n", "(file)", "needs `grades`"),
    ("fit:\n  - {name: a, when: {x: 1}, points: 1}\ngrades: {A: 10, B: 5, C: 1, D: 0}\n"
     "thresholds: {mql: 3, mql_requires_grade: E}\n", "thresholds.mql_requires_grade",
     "not one of this model's grades (got 'E'); expected A, B, C, D or F"),
    ("engagement:\n  rules:\n    - {name: a, event: X, points: 1, where: {traits.x: 1}}\n",
     "engagement.rules[0].where.traits.x", "cannot be read here"),
    ("lifecycle:\n  - {stage: lead, when: {email: {exists: true}}, back: true}\n", "lifecycle[0]",
     "needs `on`"),
])
def test_invalid_models_name_the_key(tmp_path: Path, snippet: str, key: str,
                                     fragment: str) -> None:
    with pytest.raises(ModelError) as info:
        load_model(write(tmp_path, "name: m\n" + snippet))
    keys = [p.key for p in info.value.problems]
    assert key in keys, keys
    assert fragment in str(info.value)


def test_duplicate_rule_names_and_models(tmp_path: Path) -> None:
    text = ("name: m\nfit:\n  - {name: a, when: {x: 1}, points: 1}\n"
            "  - {name: a, when: {x: 2}, points: 1}\n")
    with pytest.raises(ModelError, match="used twice"):
        load_model(write(tmp_path, text))
    one = write(tmp_path, "name: same\n", "one.yaml")
    two = write(tmp_path, "name: same\n", "two.yaml")
    with pytest.raises(ModelError, match="same name"):
        load_models([one, two])


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="file not found"):
        load_model(tmp_path / "missing.yaml")
    with pytest.raises(ModelError, match="not valid YAML") as info:
        load_model(write(tmp_path, "name: [unclosed\n"))
    assert info.value.problems[0].line is not None
    with pytest.raises(ModelError, match="must be a YAML mapping"):
        load_model(write(tmp_path, "- a\n- b\n"))


AGES = """\
name: ages
fit:
  - name: signed up lately
    age_of: signed_up
    bands:
      - {lt: 30, points: 10}
      - {eq: "2024-01-24", points: 5}
account:
  fit:
    - {name: young company, age_of: founded, bands: [{lt: 365, points: 5}]}
"""


def test_an_age_band_never_compares_a_date_for_equality(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as caught:
        load_model(write(tmp_path, AGES))
    found = {p.key: p for p in caught.value.problems}
    assert "never equality on a date" in found["fit[0].bands[1].eq"].message
    assert found["fit[0].bands[1].eq"].line == 7
    assert "account fit" in found["account.fit[0].age_of"].message
    both = "name: m\nfit:\n  - {name: b, age_of: x, attribute: x, bands: [{lt: 1, points: 1}]}\n"
    with pytest.raises(ModelError, match="not both"):
        load_model(write(tmp_path, both, "both.yaml"))
    good = AGES.split("account:")[0].replace('      - {eq: "2024-01-24", points: 5}\n', "")
    rule = load_model(write(tmp_path, good, "good.yaml")).fit[0]
    assert rule.age_of == "signed_up" and rule.attribute is None
