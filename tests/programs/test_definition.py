"""Refused at load, with the §3 error shape (file, line, key, expected, suggestion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadscore.errors import ModelError
from leadscore.programs.definition import load_program
from leadscore.segments.definition import load_segment, load_segments
from tests.programs.world import WELCOME, write_world


def _refused(root: Path, text: str) -> list[str]:
    (root / "programs" / "p.yaml").write_text(text)
    with pytest.raises(ModelError) as info:
        load_program(root / "programs" / "p.yaml")
    return [str(p) for p in info.value.problems]


def test_a_good_program_loads(tmp_path: Path) -> None:
    root = write_world(tmp_path)
    program = load_program(root / "programs" / "welcome.yaml")
    assert [s.kind for s in program.steps] == ["send_email", "wait", "send_email"]


def test_bad_programs_are_refused_with_file_line_and_key(tmp_path: Path) -> None:
    root = write_world(tmp_path)
    unknown = _refused(root, WELCOME.replace("  - wait: {days: 1}", "  - wiat: {days: 1}"))
    assert any(":9: steps[1].wiat: unknown step 'wiat'" in p and "Did you mean 'wait'" in p
               for p in unknown), unknown
    missing = _refused(root, WELCOME + "    then: tipps\n")
    assert any("steps[2]: jump to a missing step 'tipps'" in p for p in missing), missing
    cycle = _refused(root, WELCOME.replace("  - wait: {days: 1}\n", "").replace(
        "send_email: {template: reminder}", "send_email: {template: reminder}\n    then: hello"))
    assert any("loop without a wait" in p and "hello → reminder" in p for p in cycle), cycle
    (root / "templates" / "broken.txt").write_text("Hello {{ traits.name ")
    broken = _refused(root, WELCOME.replace("template: reminder", "template: broken"))
    assert any("steps[2].send_email.template: template broken.txt does not compile" in p
               for p in broken), broken
    absent = _refused(root, WELCOME.replace("template: reminder", "template: nope"))
    assert any("template not found" in p for p in absent), absent


def test_self_referencing_segments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        load_segment("me.yaml", text="name: me\nwhen:\n  any:\n    - {in_segment: me}\n")
    assert str(info.value.problems[0]).startswith("me.yaml:2: when: the segment refers to "
                                                  "itself")
    (tmp_path / "a.yaml").write_text("name: a\nwhen: {in_segment: b}\n")
    (tmp_path / "b.yaml").write_text("name: b\nwhen: {in_segment: a}\n")
    with pytest.raises(ModelError, match="cycle"):
        load_segments([tmp_path])
    with pytest.raises(ModelError) as info:
        load_segment("s.yaml", text="name: s\nmodel: m\nwhen: {score.temprature: hot}\n")
    assert "Did you mean 'score.temperature'" in str(info.value)
