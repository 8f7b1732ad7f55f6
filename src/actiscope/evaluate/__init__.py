"""Metrics, plots, reports and architecture comparison."""
