"""The `leadscore` command line: one module per command group (`check`, `score`, `explain`,
`demo`, `learn`, `service`, `segments`, `programs`), each with its `commands`, merged by
`app`; `console` is where they all write, `progress` how they show a long run."""

from leadscore.cli.app import app, main

__all__ = ["app", "main"]
