from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def offline_models(offline_weights: Path) -> Path:
    """Model tests see an empty torchvision hub cache and weights store of their own, and never download
    (tests/conftest.py's offline_weights)."""
    return offline_weights
