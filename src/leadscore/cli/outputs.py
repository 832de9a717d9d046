"""Files a command writes (`--out`, `--report`, `--accounts`): checked before any work, their
folder made where missing, and an existing file's overwrite said out loud."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from leadscore.cli.console import err, fail, say


def output_path(path: str | Path, option: str = "--out",
                suffixes: Sequence[str] | None = None) -> Path:
    """`path` ready to be written: a known type (`suffixes`), not a folder, its folder
    created (said once); an existing file is named as overwritten."""
    target = Path(path)
    if suffixes is not None and target.suffix.lower() not in suffixes:
        fail(f"error: {option} {target}: unknown output type "
             f"{target.suffix or '(no extension)'!r}; expected one of {', '.join(suffixes)}")
    if target.is_dir():
        fail(f"error: {option} {target}: is a folder; expected a file name")
    if not target.parent.exists():
        target.parent.mkdir(parents=True)
        say(f"created folder {target.parent}", "dim", console=err)
    elif target.exists():
        say(f"overwriting {target}", "yellow", console=err)
    return target
