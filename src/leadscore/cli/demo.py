"""`leadscore demo`: a generated world scored with the example models, or served live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli.console import clean_errors, out

commands = typer.Typer()


@commands.command()
@clean_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder to write "
                                          "the demo world and its scores to.")
                       ] = Path("leadscore-demo"),
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the world.")] = 7,
    serve: Annotated[bool, typer.Option("--serve", help="Load the world into a SQLite store "
                                        "through the service and serve the dashboard.")] = False,
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port of --serve.")
                    ] = 8000,
) -> None:
    """Generate a demo world, score it with the example models, and show what came out."""
    if serve:
        from leadscore.demo.serve import serve_demo

        serve_demo(out_dir, seed, port)
        return
    from leadscore.demo.show import run_demo

    run_demo(out_dir, seed, out)
