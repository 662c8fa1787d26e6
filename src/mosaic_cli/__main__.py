"""``python -m mosaic_cli`` runs the ``mosaic`` command."""

from mosaic_cli._app import main

main()
