"""`python -m leadscore.cli …`: the `leadscore` command."""

from leadscore.cli.app import main

main()
