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


OFFLINE = [b for b in blocks("python") if "analytics.host" not in b]
SERVICE = [b for b in blocks("python") if "analytics.host" in b]


@pytest.mark.parametrize("code", OFFLINE)
def test_python_examples_run(code: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the example printed nothing"


@pytest.mark.parametrize("code", SERVICE)
def test_service_example_sends_to_a_live_server(code: str, tmp_path: Path) -> None:
    from tests.api.conftest import WRITE_KEY
    from tests.api.live import serving

    models = ROOT / "src" / "leadscore" / "demo" / "models"
    with serving(f"sqlite:///{tmp_path / 'ls.db'}", tmp_path, models=models) as live:
        script = code.replace('"wk_…"', repr(WRITE_KEY)).replace(
            '"http://127.0.0.1:8000"', repr(live.url))
        result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        with live.admin() as admin:
            lead = admin.get("/api/leads/ann", params={"model": "b2c-art-supplies"}).json()
    assert lead["fit"] == 10.0
    assert {r["rule"] for r in lead["reasons"]} >= {"core age band", "newsletter signup"}


# `demo` is run by tests/test_cli.py; `serve` runs until stopped (tests/test_server.py).
CLI = [b for b in blocks("bash") if b.lstrip().startswith("leadscore ")
       and not b.lstrip().startswith("leadscore demo") and "leadscore serve" not in b]


@pytest.mark.parametrize("command", CLI)
def test_cli_examples_run(command: str, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    line = command.replace("\\\n", " ")
    env = {**os.environ, "COLUMNS": "120"}
    result = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    if " --out " in line:
        out = line.split(" --out ", 1)[1].split()[0]
        assert (tmp_path / out).stat().st_size > 0
    # Run from the repository's root, it would litter nothing: what it writes is under tour/,
    # which git ignores.
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.iterdir()} - {"examples"}
    assert written <= {"tour"}, written


def test_the_tour_folder_is_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "tour/" in ignored


def test_the_yaml_example_is_a_valid_model(tmp_path: Path) -> None:
    from leadscore import load_model

    (yaml_block,) = blocks("yaml")
    path = tmp_path / "readme-model.yaml"
    path.write_text(yaml_block)
    assert load_model(path).name == "b2c-art-supplies"


def test_the_ci_lock_pins_every_dependency_and_the_readme_shows_its_install() -> None:
    """requirements/ci.txt holds one exact version of every dependency the test install
    resolves, so `pip install -e ".[test]" -c requirements/ci.txt` reproduces CI's set."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    names = {re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower().replace("_", "-")
             for spec in wanted}
    pinned = {}
    for line in (ROOT / "requirements" / "ci.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements/ci.txt: {line!r} is not pinned with =="
            pinned[name.lower().replace("_", "-")] = version
    assert names - set(pinned) == set(), names - set(pinned)
    assert 'pip install -e ".[test]" -c requirements/ci.txt' in README
    assert "requirements/ci.txt" in (ROOT / ".ci" / "run").read_text()
