"""The README's examples run as written (its Python blocks and its `leadscore` commands)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_readme_has_the_two_setup_commands() -> None:
    commands = [b.strip() for b in blocks("bash")]
    assert 'pip install -e . && leadscore demo' in commands
    assert 'pip install -e ".[test]" && python -m pytest' in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m pytest" in ci


@pytest.mark.parametrize("code", blocks("python"))
def test_python_examples_run(code: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the example printed nothing"


CLI = [b for b in blocks("bash") if b.lstrip().startswith("leadscore ")
       and not b.lstrip().startswith(("leadscore demo", "leadscore serve"))]


@pytest.mark.parametrize("command", CLI)
def test_cli_examples_run(command: str, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    line = command.replace("\\\n", " ")
    env = {**os.environ, "COLUMNS": "120"}
    result = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    if "--out" in line:
        out = line.split("--out", 1)[1].split()[0]
        assert (tmp_path / out).stat().st_size > 0


def test_the_yaml_example_is_a_valid_model(tmp_path: Path) -> None:
    from leadscore import load_model

    (yaml_block,) = blocks("yaml")
    path = tmp_path / "readme-model.yaml"
    path.write_text(yaml_block)
    assert load_model(path).name == "b2c-art-supplies"
