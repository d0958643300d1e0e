"""``python -m fgsarchive`` runs the command-line interface."""

from .cli import main

main()
