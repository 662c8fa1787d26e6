"""mosaic_cli."""
