"""Where pretrained weight files are found without a network: the hubs' caches and actiscope's store.

The store is a folder (`$ACTISCOPE_WEIGHTS`, default `~/.cache/actiscope/weights`) of
`<architecture>-<name>.safetensors` files, each beside a JSON sidecar with its sha256 and the file it
was imported from. `actiscope weights import` fills it; the sidecar is written last, so a file
without one is not in the store.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import torch

from actiscope.errors import ActiscopeError
from actiscope.files import atomic_output, atomic_write_text

STORE_ENV = "ACTISCOPE_WEIGHTS"
DEFAULT_STORE = Path("~/.cache/actiscope/weights")


class WeightsError(ActiscopeError):
    pass


@dataclass(frozen=True)
class StoredWeights:
    """One file in the store and what its sidecar says about it."""

    architecture: str
    name: str  # what `--weights NAME` finds it as: imagenet, kinetics
    file: Path
    sha256: str  # of `file`
    origin: str  # the file it was imported from
    origin_sha256: str
    imported: str


@dataclass(frozen=True)
class WeightsStore:
    root: Path

    def file(self, architecture: str, name: str) -> Path:
        return self.root / f"{architecture.replace('/', '--')}-{name}.safetensors"

    def _sidecar(self, architecture: str, name: str) -> Path:
        return self.file(architecture, name).with_suffix(".json")

    def lookup(self, architecture: str, name: str) -> StoredWeights | None:
        """The stored `name` weights of `architecture`, or None when there are none."""
        sidecar = self._sidecar(architecture, name)
        if not sidecar.is_file() or not self.file(architecture, name).is_file():
            return None
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
            return StoredWeights(**{**record, "file": self.file(architecture, name)})
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise WeightsError(
                f"{sidecar}: unreadable ({type(exc).__name__}); run `actiscope weights import` for {architecture} again"
            ) from None

    def put(
        self, architecture: str, name: str, state: dict[str, torch.Tensor], origin: Path
    ) -> StoredWeights:
        """Keep `state` as safetensors (written atomically), then the sidecar that records it."""
        from safetensors.torch import save_file

        target = self.file(architecture, name)
        # The same import gives the same bytes: no time in the file, and one metadata key (safetensors
        # writes its metadata map in no fixed order).
        with atomic_output(target) as tmp:
            save_file(
                {k: v.contiguous() for k, v in state.items()},
                str(tmp),
                metadata={"architecture": architecture},
            )
        record = StoredWeights(
            architecture,
            name,
            target,
            sha256_file(target),
            str(origin.resolve()),
            sha256_file(origin),
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
        fields = {k: v for k, v in asdict(record).items() if k != "file"}
        atomic_write_text(self._sidecar(architecture, name), json.dumps(fields, indent=2))
        return record


def weights_store(root: Path | None = None) -> WeightsStore:
    """The store at `root`, or where `$ACTISCOPE_WEIGHTS` says (default ~/.cache/actiscope/weights)."""
    if root is None:
        root = Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)
    return WeightsStore(root.expanduser())


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def torch_hub_file(url: str) -> Path | None:
    """Where `torch.hub.load_state_dict_from_url(url)` keeps its download (under $TORCH_HOME), if there."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    return path if path.is_file() else None


def torchvision_cached(name: str) -> tuple[str, Path] | None:
    """torchvision's cached download of `name`'s default weights: ("torchvision hub cache", file) or None."""
    import torchvision

    found = torch_hub_file(torchvision.models.get_model_weights(name).DEFAULT.url)
    return ("torchvision hub cache", found) if found else None


def hf_hub_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of `filenames` in the Hugging Face hub cache (timm's downloads), without network."""
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = repo_id.partition("@")
    for filename in filenames:
        found = try_to_load_from_cache(repo, filename, revision=revision or None)
        if isinstance(found, str):  # otherwise None, or a marker for "known not to exist"
            return Path(found)
    return None
