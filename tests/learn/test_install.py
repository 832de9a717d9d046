"""Installs that work: after the README's own install line (`pip install -e .`, no extras) every
`leadscore` command the README shows either runs or stops with one line naming the extra to
install — never "internal error".

The optional dependencies are made absent by an import finder that finds nothing for them, so
`import pandas` raises the ModuleNotFoundError (name='pandas') an interpreter without pandas
raises. Everything else runs for real in a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from leadscore.errors import EXTRAS

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
COMMANDS = [b.replace("\\\n", " ").strip() for b in re.findall(r"```bash\n(.*?)```", README,
                                                                 flags=re.S)
            if b.lstrip().startswith("leadscore ") and "leadscore serve" not in b
            and not b.lstrip().startswith("leadscore demo")]
# A finder first on sys.meta_path that finds nothing for the optional packages: Python then
# raises ModuleNotFoundError(name=...) as it does where they are not installed, and
# `"pandas" in sys.modules` stays False for the libraries that look there.
BLOCK = ("import sys\n"
         "class Absent:\n"
         "    def find_spec(self, name, path=None, target=None):\n"
         f"        if name.split('.')[0] in {sorted(EXTRAS)!r}:\n"
         "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
         "sys.meta_path.insert(0, Absent())\n")
WITHOUT_EXTRAS = (BLOCK + "from leadscore.cli import main\n"
                  "sys.argv = ['leadscore', *sys.argv[1:]]\n"
                  "main()\n")


def run_without_extras(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("LEADSCORE_DEBUG", None)
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_readme_shows_evaluate_and_learn() -> None:
    assert any(c.startswith("leadscore evaluate") for c in COMMANDS)
    assert any(c.startswith("leadscore learn") for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c.split()[:2]))
def test_readme_command_runs_or_names_the_extra(command: str, tmp_path: Path) -> None:
    import shlex

    (tmp_path / "examples").symlink_to(ROOT / "examples")
    args = shlex.split(command.splitlines()[0].split("#")[0])[1:]
    result = run_without_extras(args, tmp_path)
    assert "internal error" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert re.fullmatch(r"error: this needs the optional dependency \w+, which is not "
                            r"installed: pip install 'leadscore\[\w+\]'", lines[0]), lines[0]


def test_learn_and_evaluate_name_the_learn_extra(tmp_path: Path) -> None:
    (tmp_path / "o.csv").write_text("lead_id,converted\na,1\n")
    for command in ("learn", "evaluate"):
        args = [command, "--events", str(ROOT / "examples/data/planted-events.parquet"),
                "--outcomes", "o.csv"]
        if command == "evaluate":
            args += ["--model", str(ROOT / "examples/planted-hand.yaml"), "--as-of",
                     "2026-06-01T00:00:00Z"]
        result = run_without_extras(args, tmp_path)
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().endswith("pip install 'leadscore[learn]'"), result.stderr


def test_the_python_api_names_the_extra() -> None:
    code = (BLOCK + "import leadscore.learn as l\n"
            "try:\n    l.learn\nexcept ModuleNotFoundError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert "pip install 'leadscore[learn]'" in result.stdout, result.stdout + result.stderr
