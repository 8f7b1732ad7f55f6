"""Lightning's checkpoint files (last.ckpt, best.ckpt), written whole or not at all and read weights-only.

Lightning 2.6 writes a checkpoint through an fsspec transaction: the bytes go to a temporary file in
$TMPDIR and are then moved to the checkpoint's name. Where $TMPDIR is another file system than the run
(a tmpfs /tmp, a run on disk) that move is a copy into the final name, so a process killed during it
leaves half a last.ckpt for `--resume` to choke on. This writes beside the target and renames instead.

Loading is weights-only whatever torch's default (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, torch < 2.6): a run
folder from someone else may hold a checkpoint that pickles code. Lightning's checkpoints hold only
tensors, containers and primitives, so nothing needs allowlisting.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from actiscope.errors import ActiscopeError
from actiscope.files import atomic_output, leftovers


class CheckpointError(ActiscopeError):
    """A checkpoint that cannot be loaded: damaged, or not one a training run wrote."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO with the save made atomic and the load made weights-only."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        target = Path(path)
        for stale in leftovers(target):  # from a process killed while saving; each run has one writer
            stale.unlink(missing_ok=True)
        # A file object, not the path: torch's own writer reports a full disk as "unexpected pos"
        # (a RuntimeError); through Python it is the OSError that atomic_output names.
        with atomic_output(target) as tmp, tmp.open("wb") as fh:
            torch.save(checkpoint, fh)

    def load_checkpoint(
        self,
        path: str | Path,
        map_location: Callable[..., Any] | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = super().load_checkpoint(path, map_location, weights_only=True)
        except pickle.UnpicklingError as exc:  # the weights-only unpickler refused it, or not a pickle
            code = re.search(r"GLOBAL (\S+)", str(exc))
            why = (
                f"it pickles {code[1]}, not only tensors, and loading it could run code (refused unloaded)"
                if code
                else "not a checkpoint file"
            )
            raise CheckpointError(f"{path}: not a training checkpoint: {why}; start the run anew") from None
        except (RuntimeError, EOFError, ValueError) as exc:  # a truncated or damaged zip
            first = str(exc).strip().partition("\n")[0][:200]
            raise CheckpointError(
                f"{path}: a damaged checkpoint ({type(exc).__name__}: {first}); start the run anew"
            ) from None
        if not isinstance(loaded, dict) or not {"state_dict", "pytorch-lightning_version"} <= set(loaded):
            raise CheckpointError(f"{path}: not a checkpoint Lightning wrote; start the run anew")
        return loaded
