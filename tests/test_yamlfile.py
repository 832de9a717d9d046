"""leadscore.yamlfile: lines, key paths, suggestions and problems shared by every YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadscore.errors import ModelError
from leadscore.yamlfile import key_path, problem, read_yaml, suggest

TEXT = """\
name: m
on: yes
fit:
  - name: a
    points: 1
"""


def test_lines_and_key_paths() -> None:
    raw, lines, file = read_yaml("m.yaml", TEXT)
    assert raw["on"] == "yes"                         # YAML 1.2: `on`/`yes` stay strings
    assert lines.of(("fit", 0, "points")) == 5
    assert lines.of(("fit", 0, "missing")) == 4       # the nearest key above it
    assert key_path(("fit", 0, "points")) == "fit[0].points" and key_path(()) == "(file)"
    assert str(problem(file, lines, ("fit", 0, "points"), "bad", 1, "a number", "2")) == (
        "m.yaml:5: fit[0].points: bad (got 1); expected a number. Did you mean '2'?")


def test_suggest() -> None:
    assert suggest("engagment", ["fit", "engagement"]) == "engagement"
    assert suggest("xyz", ["fit", "engagement"]) is None
    assert suggest("ONCE", ["once", "daily"]) is None
    assert suggest("ONCE", ["once", "daily"], ignore_case=True) == "once"
    assert suggest("==", ["eq", "ne"], aliases={"==": "eq"}) == "eq"


def test_unreadable_files_are_problems(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="file not found"):
        read_yaml(tmp_path / "none.yaml")
    with pytest.raises(ModelError, match=r"bad.yaml:2: \(file\): not valid YAML"):
        read_yaml("bad.yaml", "a: 1\n b: [\n")
