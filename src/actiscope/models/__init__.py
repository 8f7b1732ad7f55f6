"""Model registry and the one model interface every architecture exposes."""

from actiscope.models.registry import DataConfig, ModelEntry, create_model, get_entry, list_models

__all__ = ["DataConfig", "ModelEntry", "create_model", "get_entry", "list_models"]
