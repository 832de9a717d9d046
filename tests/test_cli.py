"""The `leadscore` command, run for real through typer's CliRunner."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from leadscore import __version__
from leadscore.cli import app

EXAMPLES = Path(__file__).parent.parent / "examples"
B2C = str(EXAMPLES / "b2c-art-supplies.yaml")
runner = CliRunner()

EVENTS_CSV = """\
lead_id,timestamp,type,event,path,topic
ann,2026-05-01T09:00:00Z,track,Newsletter Subscribed,,
ann,2026-05-09T17:00:00Z,page,,/stores/hamburg,
ann,yesterday-ish,page,,/products/paper/a4,
,2026-05-09T17:05:00Z,page,,/products/paper/a4,
bob,2026-05-08T10:00:00Z,page,,/products/paint/oil,
bob,2026-05-08T11:00:00Z,track,Email Link Clicked,,painting
"""
LEADS_CSV = """\
lead_id,segment,email,age,birthday,occupation
ann,consumer,ann@example.org,31,1995-01-02,artist
bob,consumer,bob@rival-art.example,40,,shop owner
"""


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def no_traceback(output: str) -> None:
    assert "Traceback" not in output and 'File "' not in output


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "events.csv").write_text(EVENTS_CSV, encoding="utf-8")
    (tmp_path / "leads.csv").write_text(LEADS_CSV, encoding="utf-8")
    return tmp_path


def test_version() -> None:
    code, output = run("--version")
    assert code == 0 and output.strip() == f"leadscore {__version__}"


# ---- check

def test_check_passes_the_examples() -> None:
    pytest.importorskip("leadscore.engine.batch")
    code, output = run("check", B2C, str(EXAMPLES / "b2b-software.yaml"))
    assert code == 0, output
    assert "2 model files, 8 worked examples: 8 passed" in output


def test_check_lists_every_problem_one_line_each(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfit:\n  - {name: a, when: {age: {gte: 1}}, points: 1, limt: 1}\n"
                   "engagement: {rules: [{name: b, page: /x, points: 1, limit: dayly}]}\n")
    code, output = run("check", str(bad), str(tmp_path / "missing.yaml"))
    assert code == 1
    no_traceback(output)
    assert f"{bad}:3: fit[0].limt: unknown key 'limt'" in output
    assert re.search(rf"{re.escape(str(bad))}:4: engagement\.rules\[0\]\.limit: .*"
                     r"Did you mean 'daily'\?", output)
    assert f"{tmp_path / 'missing.yaml'}: (file): file not found" in output


def test_check_reports_a_failing_worked_example(tmp_path: Path) -> None:
    pytest.importorskip("leadscore.engine.batch")
    text = Path(B2C).read_text().replace("temperature: warm, mql: false",
                                         "temperature: hot, mql: false")
    model = tmp_path / "m.yaml"
    model.write_text(text)
    code, output = run("check", str(model))
    assert code == 1
    assert ("test 'a newsletter reader who visits a store is warm, not yet an MQL': "
            "temperature: expected 'hot', got 'warm' (both engines); reasons: store locator"
            in output)
    assert "1 failed" in output


TYPO = """\
name: typo
engagement:
  rules:
    - {name: opened, event: Email Opend, points: 2}
    - {name: ordered, event: Order Completed, points: 20}
    - {name: nowhere, page: /no-such-page*, points: 1}
"""


def test_check_with_events_names_rules_that_match_nothing_and_the_closest_name(
        tmp_path: Path) -> None:
    model = tmp_path / "typo.yaml"
    model.write_text(TYPO)
    code, output = run("check", str(model), "--events", str(EXAMPLES / "data" / "events.csv"))
    assert code == 0, output        # a warning, not a failure: the model is valid
    assert ("engagement rule 'opened' matched no event (it listens to event 'Email Opend'); "
            "did you mean 'Email Opened'?") in output
    assert "engagement rule 'nowhere' matched no event (it listens to pages /no-such-page*)" \
        in output
    assert "'ordered' matched" not in output
    assert "2 rules matched no event" in output
    code, output = run("check", B2C, "--events", str(EXAMPLES / "data" / "events.csv"))
    assert code == 0 and "every rule matched at least one event" in output, output


def test_score_warns_of_rules_that_matched_nothing(tmp_path: Path) -> None:
    model = tmp_path / "typo.yaml"
    model.write_text(TYPO)
    code, output = run("score", "-m", str(model), "-e", str(EXAMPLES / "data" / "events.csv"),
                       "-o", str(tmp_path / "s.csv"))
    assert code == 0, output
    assert "warning: model 'typo': engagement rule 'opened' matched no event" in output
    assert "did you mean 'Email Opened'?" in output


def test_a_serve_that_fails_to_start_leaves_no_empty_store(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    models = tmp_path / "models"
    models.mkdir()
    (models / "m.yaml").write_text(Path(B2C).read_text())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args in (["--models", str(tmp_path / "missing")], ["--port", str(port)],
                     ["--port", str(port), "--db", "other.db"]):
            result = subprocess.run([sys.executable, "-m", "leadscore.cli", "serve", *args],
                                    cwd=tmp_path, capture_output=True, text=True, timeout=120)
            assert result.returncode != 0, result.stderr
            assert sorted(p.name for p in tmp_path.iterdir()) == ["models"], result.stderr


# ---- score

def test_score_skips_counts_and_writes_bad_rows(files: Path) -> None:
    pytest.importorskip("leadscore.engine.batch")
    out = files / "scores.csv"
    code, output = run("score", "--model", B2C, "--events", str(files / "events.csv"),
                       "--leads", str(files / "leads.csv"), "--as-of", "2026-05-10T00:00:00Z",
                       "--out", str(out))
    assert code == 0, output
    assert "skipped 2 bad rows" in output
    rejected = files / "scores.rejected.csv"
    assert rejected.exists() and str(rejected) in output
    lines = rejected.read_text().splitlines()
    assert len(lines) == 3 and "timestamp" in lines[1] and "lead_id" in lines[2]
    scores = out.read_text().splitlines()
    assert scores[0].startswith('"lead_id","model","fit"')
    assert len(scores) == 3
    assert "Scores by model" in output and "b2c-art-supplies" in output
    bob = next(line for line in scores if line.startswith('"bob"'))
    assert '"competitor"' in bob


def test_score_strict_fails_naming_file_row_and_field(files: Path) -> None:
    pytest.importorskip("leadscore.engine.batch")
    events = files / "events.csv"
    code, output = run("score", "--model", B2C, "--events", str(events), "--as-of",
                       "2026-05-10T00:00:00Z", "--out", str(files / "s.parquet"), "--strict")
    assert code == 1
    no_traceback(output)
    [line] = output.strip().splitlines()
    assert str(events) in line and "row 3" in line and "'timestamp'" in line
    assert not (files / "s.parquet").exists()


def test_score_bad_input_is_one_line(files: Path) -> None:
    cases = [
        ("--events", str(files / "nope.parquet")),
        ("--model", str(files / "nope.yaml")),
        ("--as-of", "next week"),
        ("--out", str(files / "scores.xlsx")),
    ]
    for option, value in cases:
        args = {"--model": B2C, "--events": str(files / "events.csv"),
                "--out": str(files / "o.csv"), "--as-of": "2026-05-10T00:00:00Z"}
        args[option] = value
        code, output = run("score", *[part for pair in args.items() for part in pair])
        assert code == 1, (option, output)
        no_traceback(output)
        assert len(output.strip().splitlines()) == 1, (option, output)
        assert value.split("/")[-1] in output or option == "--as-of", (option, output)


def test_score_missing_column_names_it(files: Path) -> None:
    events = files / "no_lead.csv"
    events.write_text("timestamp,event\n2026-05-01T00:00:00Z,Signed Up\n")
    code, output = run("score", "--model", B2C, "--events", str(events), "--out",
                       str(files / "o.csv"))
    assert code == 1
    no_traceback(output)
    assert "lead_id" in output and str(events) in output


def test_score_with_state_says_how_each_model_ran(files: Path) -> None:
    pytest.importorskip("leadscore.engine.batch")
    folder = files / "events"
    folder.mkdir()
    header, *rows = EVENTS_CSV.splitlines()
    good = [row for row in rows if "yesterday" not in row and not row.startswith(",")]
    (folder / "day-1.csv").write_text("\n".join([header, *good]) + "\n")
    args = ("score", "-m", B2C, "-e", str(folder), "-l", str(files / "leads.csv"), "--state",
            str(files / "state"), "-o", str(files / "scores.csv"), "--as-of")
    code, output = run(*args, "2026-05-10T00:00:00Z")
    assert code == 0, output
    assert "b2c-art-supplies: rebuild (no state yet); 1 file read" in output
    assert "wrote 2 scores" in output
    (folder / "day-2.csv").write_text(f"{header}\nann,2026-05-10T08:00:00Z,page,,/stores/x,\n")
    code, output = run(*args, "2026-05-11T00:00:00Z")
    assert code == 0, output
    assert "b2c-art-supplies: incremental (new files only); 1 file read" in output


def test_the_state_progress_is_a_bar_per_model() -> None:
    import io

    from rich.console import Console

    from leadscore.cli.progress import partitions

    screen = io.StringIO()
    with partitions(Console(file=screen, force_terminal=True, width=100)) as step:
        step("web", "reading", 0, None)
        step("web", "month=2026-01", 1, 3)
        step("shop", "reading", 0, None)
    text = screen.getvalue()
    assert "web: month=2026-01" in text and "1/3" in text and "shop: reading" in text


# ---- explain

def test_explain_shows_reasons_that_sum_to_the_score(files: Path) -> None:
    code, output = run("explain", "--model", B2C, "--events", str(files / "events.csv"),
                       "--leads", str(files / "leads.csv"), "--lead", "ann", "--as-of",
                       "2026-05-10T00:00:00Z")
    assert code == 0, output
    for rule in ("core age band", "gave birthday", "creative occupation", "newsletter signup",
                 "store locator"):
        assert rule in output
    assert "score 52.32 = fit 30 + engagement 22.32" in output
    assert "grade A · warm · stage mql · MQL yes" in output
    # Times in the model's zone (Europe/Berlin: 17:00Z is 19:00 in May), the zone named.
    assert "last match (Europe/Berlin)" in output and "2026-05-09 19:00" in output


def test_explain_unknown_lead(files: Path) -> None:
    code, output = run("explain", "--model", B2C, "--events", str(files / "events.csv"),
                       "--lead", "zoe")
    assert code == 1
    no_traceback(output)
    assert "lead 'zoe' has no events" in output


# ---- demo

def test_demo_is_deterministic_and_shows_the_picture(tmp_path: Path) -> None:
    pytest.importorskip("leadscore.engine.batch")
    code, output = run("demo", "--out", str(tmp_path / "one"))
    assert code == 0, output
    for text in ("Top leads", "Disqualified", "competitor", "student", "job_seeker",
                 "grade (fit) × temperature", "Who they really are"):
        assert text in output
    code, _ = run("demo", "--out", str(tmp_path / "two"))
    assert code == 0
    one = (tmp_path / "one" / "scores.csv").read_bytes()
    assert one == (tmp_path / "two" / "scores.csv").read_bytes()
    assert len(one.splitlines()) == 4001
    assert (tmp_path / "one" / "events.parquet").exists()
    assert (tmp_path / "one" / "models" / "b2b-software.yaml").exists()


# ---- every command's --help

def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command under `group` with the words that run it, groups included."""
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))


def value_params(command: Any) -> Iterator[Any]:
    """The parameters that take a value: arguments and options that are not flags."""
    for param in command.params:
        if param.param_type_name == "argument" or not param.is_flag:
            yield param


def test_every_help_shows_readable_metavars() -> None:
    root = typer.main.get_command(app)
    listed = list(commands(root))
    assert len(listed) > 10
    for path, command in listed:
        code, output = run(*path, "--help")
        assert code == 0, (path, output)
        for param in value_params(command):
            assert param.metavar and re.fullmatch(r"[A-Z][A-Z_.]*", param.metavar), \
                (path, param.name, param.metavar)
        # and none shows a Python type in the left column (`<list[Path]>`, `<str>`)
        records, section = [], ""
        for line in output.splitlines():
            if re.match(r"\S.*:$", line):
                section = line
            elif section in ("Arguments:", "Options:") and re.match(r"  \S", line):
                records.append(line.strip().split("  ")[0])
        assert records and not [r for r in records if "<" in r or "[" in r], (path, records)


def test_every_option_and_command_has_help_and_the_root_lists_commands_by_task() -> None:
    missing = []
    for path, command in commands(typer.main.get_command(app)):
        missing += [(path, "(command)")] if not command.help else []
        missing += [(path, param.opts) for param in command.params
                    if param.param_type_name == "option" and not param.help]
    assert missing == []
    code, output = run("--help")
    assert code == 0
    sections = re.findall(r"^(\S[^:]*):$", output, flags=re.M)
    assert [s for s in sections if s not in ("Options", "Usage")] == [
        "Get started", "Score", "Warehouse", "Serve", "Learn", "Lifecycle", "Sales",
        "Privacy"], output
    assert re.search(r"Score:\n  check .*\n  score .*\n  explain ", output), output


def test_a_short_option_means_the_same_in_every_command() -> None:
    meaning: dict[str, set[str]] = {}
    for _, command in commands(typer.main.get_command(app)):
        for param in getattr(command, "params", ()):
            if param.param_type_name != "option":
                continue
            long = max(param.opts, key=len)
            for short in (o for o in param.opts if not o.startswith("--")):
                meaning.setdefault(short, set()).add(long)
    assert {short: longs for short, longs in meaning.items() if len(longs) > 1} == {}
    assert meaning["-o"] == {"--out"}


def test_learn_takes_o_for_out(files: Path) -> None:
    # `-o` is parsed as --out: the command gets as far as asking for --outcomes.
    code, output = run("learn", "--events", str(files / "events.csv"), "-o",
                       str(files / "learned.yaml"))
    assert code == 1, output
    assert "--outcomes is needed" in output
