"""mosaic_memory."""
