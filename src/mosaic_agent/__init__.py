"""mosaic_agent."""
