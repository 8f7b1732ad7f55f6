"""Model registry and the one model interface every architecture exposes."""

from actiscope.models.registry import ModelEntry, create_model, get_entry, list_models

__all__ = ["ModelEntry", "create_model", "get_entry", "list_models"]
