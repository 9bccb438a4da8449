"""`python -m renderer`: the same as the `dossier` command."""

from .cli import main

main()
