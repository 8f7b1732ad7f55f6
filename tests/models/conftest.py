from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch


@pytest.fixture(autouse=True)
def offline_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Model tests see an empty torchvision hub cache and weights store of their own, and never download:
    torch.hub's download (behind torchvision's weights and timm's URLs) fails as it does offline."""

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise URLError(f"no network in tests ({url})")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("ACTISCOPE_WEIGHTS", str(tmp_path / "weights-store"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path
