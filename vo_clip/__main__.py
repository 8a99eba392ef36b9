"""``python -m vo_clip`` runs the command line."""

from .cli import main

main()
