"""The service commands: `leadscore init`, `serve`, `import`, `rescore`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from leadscore.cli.console import clean_errors, err, say
from leadscore.cli.options import ConfigOption, DbOption
from leadscore.cli.progress import counters
from leadscore.config import Settings, load_settings, write_config

commands = typer.Typer()

ModelsOption = Annotated[Path | None, typer.Option(
    "--models", metavar="DIR", help="folder of model YAML files [$LEADSCORE_MODELS]")]


def settings_of(config: Path | None, **flags: Any) -> Settings:
    """The settings of a command: the config file, the environment, then its flags."""
    if flags.get("models_dir") is not None:
        flags["models_dir"] = str(flags["models_dir"])
    return load_settings(config, overrides=flags)


def open_service(settings: Settings) -> Any:
    from leadscore.api.app import open_service as open_app_service

    return open_app_service(settings)


@commands.command()
@clean_errors
def init(
    directory: Annotated[Path, typer.Option("--dir", metavar="DIR",
                                            help="where to write leadscore.toml")] = Path("."),
    db: DbOption = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing file")] = False,
) -> None:
    """Write leadscore.toml with a new write key and admin token (printed once)."""
    path, write_key, token = write_config(directory, db=db, overwrite=force)
    say(f"wrote {path} (the admin token is stored as its SHA-256 only)")
    say(f"write key:   {write_key}")
    say(f"admin token: {token}")
    say(f"start the service: leadscore serve --config {path}")


@commands.command()
@clean_errors
def serve(
    host: Annotated[str | None, typer.Option(metavar="ADDRESS",
                                             help="listen address [default 127.0.0.1]")
                    ] = None,
    port: Annotated[int | None, typer.Option(metavar="PORT", help="listen port [default 8000]")
                    ] = None,
    workers: Annotated[int | None, typer.Option(metavar="N",
                                                help="API worker processes [default 1]")
                       ] = None,
    db: DbOption = None,
    models: ModelsOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the ingestion and admin API and the handoff dispatcher until SIGTERM / Ctrl-C."""
    from leadscore.server import serve as run

    settings = settings_of(config, host=host, port=port, workers=workers, db=db,
                         models_dir=models)
    if not settings.write_keys:
        say("warning: no write key configured: every /v1 call will be refused "
            "(run `leadscore init`, or set LEADSCORE_WRITE_KEYS)", "yellow", console=err)
    fresh = _new_sqlite_file(settings.db)
    try:
        run(settings)
    except BaseException:       # uvicorn exits (SystemExit) when it cannot listen
        if fresh is not None:
            _remove_if_empty(fresh)
        raise


def _new_sqlite_file(url: str) -> Path | None:
    """The SQLite file `url` names where it does not exist yet (this run creates it)."""
    prefix = "sqlite:///"
    if ("://" in url and not url.startswith(prefix)) or url == "sqlite:///:memory:":
        return None
    path = Path(url.removeprefix(prefix).split("?", 1)[0])
    return None if path.exists() else path


def _remove_if_empty(path: Path) -> None:
    """A store this run created but that never received a message or a lead goes again: a
    `serve` that fails to start leaves no empty `leadscore.db` behind."""
    import sqlite3

    if not path.exists():
        return
    try:
        with sqlite3.connect(path) as connection:
            used = connection.execute("SELECT (SELECT count(*) FROM events) + "
                                      "(SELECT count(*) FROM leads)").fetchone()[0]
    except sqlite3.Error:
        return
    if not used:
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
            leftover.unlink(missing_ok=True)


@commands.command("import")
@clean_errors
def import_(
    files: Annotated[list[Path], typer.Argument(metavar="FILE",
                                                help="JSON lines, CSV or Parquet files")],
    db: DbOption = None,
    models: ModelsOption = None,
    config: ConfigOption = None,
) -> None:
    """Load events and leads from files into the store, through the same path as the API."""
    settings = settings_of(config, db=db, models_dir=models)
    service = open_service(settings)
    try:
        with counters(err) as start:
            for path in files:
                progress = start(path.name)
                result = service.import_events(path, progress=progress)
                progress.finish()
                say(f"{path}: {_describe(result)}")
                for note in result.notes:       # batches not imported in bulk, and why
                    say(f"  {note}", "dim")
            say("imported as history: scores are up to date; no program enrols anyone on "
                "these events, and nothing is e-mailed", "dim")
    finally:
        service.close()


@commands.command()
@clean_errors
def rescore(
    model: Annotated[str | None, typer.Option(metavar="NAME",
                                              help="only this model (default: all)")] = None,
    db: DbOption = None,
    models: ModelsOption = None,
    config: ConfigOption = None,
) -> None:
    """Recompute every lead's scores from the event log."""
    settings = settings_of(config, db=db, models_dir=models)
    service = open_service(settings)
    try:
        result = service.rescore(model) if model else service.rescore()
        say(f"rescored: {_describe(result)}")
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
