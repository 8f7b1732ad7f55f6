"""Training: one LightningModule for every architecture, small callbacks, and the fit entry point."""
