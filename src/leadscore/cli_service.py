"""The service commands: `leadscore init`, `serve`, `import`, `rescore`.

`cli.py` adds them to the `leadscore` command with `register(app)`; `python -m
leadscore.cli_service` runs them alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from leadscore.config import Settings, load_settings, write_config

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="config file (default: $LEADSCORE_CONFIG, else ./leadscore.toml)")]
DbOption = Annotated[str | None, typer.Option(
    "--db", help="database URL (sqlite:///file.db or postgresql://…) [$LEADSCORE_DB]")]
ModelsOption = Annotated[Path | None, typer.Option(
    "--models", help="folder of model YAML files [$LEADSCORE_MODELS]")]


def _settings(config: Path | None, **flags: Any) -> Settings:
    if flags.get("models_dir") is not None:
        flags["models_dir"] = str(flags["models_dir"])
    return load_settings(config, overrides=flags)


def _open(settings: Settings) -> Any:
    from leadscore.api.app import open_service

    return open_service(settings)


def init(
    directory: Annotated[Path, typer.Option("--dir", help="where to write leadscore.toml")] = (
        Path(".")),
    db: DbOption = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing file")] = False,
) -> None:
    """Write leadscore.toml with a new write key and admin token (printed once)."""
    path, write_key, token = write_config(directory, db=db, overwrite=force)
    out.print(f"wrote {path} (the admin token is stored as its SHA-256 only)", markup=False)
    out.print(f"write key:   {write_key}", markup=False)
    out.print(f"admin token: {token}", markup=False)
    out.print(f"start the service: leadscore serve --config {path}", markup=False)


def serve(
    host: Annotated[str | None, typer.Option(help="listen address [default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="listen port [default 8000]")] = None,
    workers: Annotated[int | None, typer.Option(help="API worker processes [default 1]")] = None,
    db: DbOption = None,
    models: ModelsOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the ingestion and admin API and the handoff dispatcher until SIGTERM / Ctrl-C."""
    from leadscore.server import serve as run

    settings = _settings(config, host=host, port=port, workers=workers, db=db,
                         models_dir=models)
    if not settings.write_keys:
        err.print("warning: no write key configured: every /v1 call will be refused "
                  "(run `leadscore init`, or set LEADSCORE_WRITE_KEYS)", style="yellow",
                  markup=False)
    run(settings)


def import_(
    files: Annotated[list[Path], typer.Argument(help="JSON lines, CSV or Parquet files")],
    db: DbOption = None,
    models: ModelsOption = None,
    config: ConfigOption = None,
) -> None:
    """Load events and leads from files into the store, through the same path as the API."""
    settings = _settings(config, db=db, models_dir=models)
    service = _open(settings)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=False) as bar:
            for path in files:
                task = bar.add_task(path.name, total=None)

                def progress(done: int, total: int | None = None, *, task: Any = task) -> None:
                    bar.update(task, completed=done, total=total)

                result = service.import_events(path, progress=progress)
                bar.update(task, total=bar.tasks[task].completed or 1,
                           completed=bar.tasks[task].completed or 1)
                out.print(f"{path}: {_describe(result)}", markup=False)
    finally:
        service.close()


def rescore(
    model: Annotated[str | None, typer.Option(help="only this model (default: all)")] = None,
    db: DbOption = None,
    models: ModelsOption = None,
    config: ConfigOption = None,
) -> None:
    """Recompute every lead's scores from the event log."""
    settings = _settings(config, db=db, models_dir=models)
    service = _open(settings)
    try:
        result = service.rescore(model) if model else service.rescore()
        out.print(f"rescored: {_describe(result)}", markup=False)
    finally:
        service.close()


def _describe(result: Any) -> str:
    if result is None:
        return "done"
    if isinstance(result, int):
        return f"{result:,}"
    fields = getattr(result, "__dataclass_fields__", None)
    if fields:
        return ", ".join(f"{name} {getattr(result, name)}" for name in fields
                         if isinstance(getattr(result, name), int | float | str))
    return str(result)


def register(app: typer.Typer, clean_errors: Callable[[Any], Any]) -> None:
    """Add `init`, `serve`, `import` and `rescore` to the `leadscore` command, each wrapped
    in `clean_errors` (errors as red lines, never a traceback)."""
    app.command("init")(clean_errors(init))
    app.command("serve")(clean_errors(serve))
    app.command("import")(clean_errors(import_))
    app.command("rescore")(clean_errors(rescore))


if __name__ == "__main__":
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                             no_args_is_help=True)
    from leadscore.cli import clean_errors

    register(standalone, clean_errors)
    os.environ.setdefault("COLUMNS", "120")
    standalone()
