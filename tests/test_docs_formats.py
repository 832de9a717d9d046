"""docs/formats.md's examples load as written: the segment and the program (with its
template) validate, and the content catalogue is read with every key it shows."""

from __future__ import annotations

import re
from pathlib import Path

from leadscore.programs.content import load_content
from leadscore.programs.definition import load_program
from leadscore.segments.definition import load_segment

DOC = (Path(__file__).parents[1] / "docs" / "formats.md").read_text()


def example(kind: str, heading: str) -> str:
    section = DOC.split(f"## {heading}", 1)[1]
    found = re.search(rf"```{kind}\n(.*?)```", section, flags=re.S)
    assert found, heading
    return found.group(1)


def test_the_segment_example_loads() -> None:
    segment = load_segment("engaged-painters.yaml", text=example("yaml", "Segments"))
    assert segment.name == "engaged painters" and segment.segments == {"loyal customers"}


def test_the_program_example_loads_with_its_template(tmp_path: Path) -> None:
    (tmp_path / "welcome.txt").write_text(example("text", "Programs"))
    (tmp_path / "nudge.txt").write_text("Still there, {{ traits.first_name }}?\n")
    program = load_program("welcome.yaml", text=example("yaml", "Programs"),
                           templates=tmp_path)
    assert [s.kind for s in program.steps] == [
        "send_email", "wait", "branch", "send_email", "wait", "notify_sales", "add_points",
        "set_stage", "webhook"]
    assert program.quiet_hours == (21 * 60, 8 * 60) and len(program.exits) == 4


def test_the_content_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "content.yaml"
    path.write_text(example("yaml", "Content"))
    items = load_content(path)
    assert [i["id"] for i in items] == ["oil-guide", "paper-guide"]
