"""checks.run_model_tests: worked examples through both engines, failures with reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadscore.checks import run_model_tests
from leadscore.model import load_model

pytest.importorskip("leadscore.engine.batch")

EXAMPLES = Path(__file__).parent.parent / "examples"

MODEL = """\
name: tiny
engagement:
  rules:
    - {name: pricing, page: /pricing*, points: 10}
    - {name: demo, event: Demo Requested, points: 30}
temperature: {hot: 40, warm: 20}
thresholds: {mql: 35}
tests:
  - name: pricing and a demo
    as_of: 2026-05-01T00:00:00Z
    events:
      - {page: /pricing, at: 2026-04-30T00:00:00Z}
      - {event: Demo Requested, at: 2026-04-30T01:00:00Z, source: web}
    expect:
      engagement: 40
      temperature: hot
      mql: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["b2c-art-supplies.yaml", "b2b-software.yaml"])
def test_the_example_models_pass_their_worked_examples(name: str) -> None:
    results = run_model_tests(load_model(EXAMPLES / name))
    assert results
    assert [line for r in results for line in r.messages()] == []


def test_a_wrong_expectation_names_test_key_expected_actual_and_reasons(tmp_path: Path) -> None:
    path = write(tmp_path, MODEL)
    [result] = run_model_tests(load_model(path))
    assert result.ok, result.messages()

    wrong = MODEL.replace("engagement: 40", "engagement: 45").replace("temperature: hot",
                                                                      "temperature: warm")
    [result] = run_model_tests(load_model(write(tmp_path, wrong)))
    assert not result.ok
    lines = result.messages()
    assert len(lines) == 2
    engagement, temperature = lines
    assert engagement.startswith(f"{path}:15: test 'pricing and a demo': engagement: ")
    assert "expected 45, got 40 (both engines)" in engagement
    assert "reasons: demo +30, pricing +10" in engagement
    assert f"{path}:16:" in temperature
    assert "temperature: expected 'warm', got 'hot'" in temperature
    assert [m.key for m in result.mismatches] == ["engagement", "temperature"]
    assert {m.actual for m in result.mismatches} == {40, "hot"}


def test_approx_expectations_and_unknown_columns(tmp_path: Path) -> None:
    text = MODEL.replace("engagement: 40", "engagement: {approx: 40.4, within: 0.5}")
    [result] = run_model_tests(load_model(write(tmp_path, text)))
    assert result.ok, result.messages()
    text = MODEL.replace("engagement: 40", "engagement: {approx: 41, within: 0.5}")
    [result] = run_model_tests(load_model(write(tmp_path, text)))
    assert "engagement: expected 41 ± 0.5, got 40 (both engines)" in result.messages()[0]
    text = MODEL.replace("engagement: 40", "engagment: 40")
    [result] = run_model_tests(load_model(write(tmp_path, text)))
    assert "expect.engagment: not an output column" in (result.error or "")


def test_a_bad_event_in_a_worked_example_is_reported_not_raised(tmp_path: Path) -> None:
    text = MODEL.replace("{page: /pricing, at: 2026-04-30T00:00:00Z}",
                         "{page: /pricing, at: last tuesday}")
    [result] = run_model_tests(load_model(write(tmp_path, text)))
    assert not result.ok
    assert "events[0].at" in (result.error or "")


def test_interest_expectations_compare_the_ranked_profile(tmp_path: Path) -> None:
    text = MODEL.replace("temperature: {hot", "interests:\n"
                         "  - {topic: '{properties.source}', event: Demo Requested, points: 3}\n"
                         "temperature: {hot")
    good = text.replace("      mql: true\n", "      mql: true\n      interests: {web: 3}\n")
    [result] = run_model_tests(load_model(write(tmp_path, good)))
    assert result.ok, result.messages()
    for wrong in ("{web: 4}", "{web: 3, mail: 1}", "{}"):
        bad = text.replace("      mql: true\n", f"      mql: true\n      interests: {wrong}\n")
        [result] = run_model_tests(load_model(write(tmp_path, bad)))
        assert not result.ok and "interests" in " ".join(result.messages())
