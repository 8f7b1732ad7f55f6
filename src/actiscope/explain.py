"""`actiscope explain`: Grad-CAM or Grad-CAM++ over an image, for any registered image architecture.

The layer to look at comes from the model's registry entry (ActionModel.cam_layer), never from a
per-architecture if-chain. The pixels come from the same Preprocessor that predicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from actiscope.data.images import load_image
from actiscope.errors import ActiscopeError
from actiscope.files import atomic_output
from actiscope.models.registry import ActionModel
from actiscope.package import load_package, member_dirs, package_dir, read_meta
from actiscope.predict import Preprocessor

METHODS = ("gradcam", "gradcam++")


class ExplainError(ActiscopeError):
    pass


@dataclass
class Explanation:
    heatmap: np.ndarray  # (H, W) in [0, 1] at the model's input size
    target: str  # the class explained
    top: list[tuple[str, float]]  # the top classes with probabilities
    out: Path | None = None


def class_activation_map(
    model: ActionModel, pixels: torch.Tensor, target: int | None = None, method: str = "gradcam"
) -> tuple[np.ndarray, np.ndarray, int]:
    """Heat map (H, W) in [0, 1], class probabilities, and the class index explained (default: top-1)."""
    if method not in METHODS:
        raise ExplainError(f"--method {method!r} is not one of: {', '.join(METHODS)}")
    if not model.cam_layer:
        raise ExplainError(f"{model.architecture}: its registry entry names no Grad-CAM layer")
    layer = model.backbone.get_submodule(model.cam_layer)
    captured: list[torch.Tensor] = []

    def keep(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        captured.append(output)
        return output.clone()  # later in-place ops (a ReLU(inplace=True)) must not change what we keep

    handle = layer.register_forward_hook(keep)
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(pixels.requires_grad_(True))
            probs = torch.softmax(logits.detach(), 1)[0]
            index = int(probs.argmax()) if target is None else target
            (grads,) = torch.autograd.grad(logits[0, index], captured[0])
    finally:
        handle.remove()
    activation = _as_map(captured[0].detach())
    grads = _as_map(grads)
    if method == "gradcam":
        weights = grads.mean(dim=(2, 3), keepdim=True)
    else:  # Grad-CAM++ (Chattopadhay et al. 2018), closed form for the exponential of the score
        g2, g3 = grads.pow(2), grads.pow(3)
        alpha = g2 / (2 * g2 + activation.sum(dim=(2, 3), keepdim=True) * g3).clamp_min(1e-12)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=pixels.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).numpy(), probs.numpy(), index


def _as_map(tensor: torch.Tensor) -> torch.Tensor:
    """NCHW as it is; transformer tokens (N, tokens, C) back onto their square grid."""
    if tensor.ndim == 4:
        return tensor.float()
    if tensor.ndim == 3:
        n, tokens, channels = tensor.shape
        side = int(tokens**0.5)
        grid = tensor[:, tokens - side * side :, :]  # drop class/register tokens in front
        return grid.transpose(1, 2).reshape(n, channels, side, side).float()
    raise ExplainError(f"the Grad-CAM layer's output has shape {tuple(tensor.shape)}; expected a feature map")


def explain(
    model_path: str | Path,
    image: str | Path,
    *,
    out: Path | None = None,
    class_name: str | None = None,
    method: str = "gradcam",
    top_k: int = 3,
) -> Explanation:
    ensemble = read_meta(model_path)
    if ensemble.is_ensemble:
        raise ExplainError(
            f"{model_path} is an ensemble of {len(ensemble.members)} models; Grad-CAM explains one model: "
            f"explain one of its members ({member_dirs(package_dir(model_path), ensemble)[0]}, ...)"
        )
    model, meta = load_package(model_path)
    assert isinstance(model, ActionModel), "an ensemble was refused above"
    if meta.kind != "image":
        raise ExplainError(
            f"{model_path}: Grad-CAM here explains image models; this one is a {meta.kind} model"
        )
    target = None
    if class_name is not None:
        if class_name not in meta.class_names:
            raise ExplainError(
                f"--class {class_name!r} is not a class of this model: {', '.join(meta.class_names)}"
            )
        target = meta.class_names.index(class_name)
    picture = load_image(image)
    pixels = torch.from_numpy(Preprocessor(meta)(picture)[None])
    heatmap, probs, index = class_activation_map(model, pixels, target, method)
    order = np.argsort(-probs)[:top_k]
    result = Explanation(
        heatmap, meta.class_names[index], [(meta.class_names[i], float(probs[i])) for i in order]
    )
    if out is not None:
        write_overlay(picture, heatmap, out, f"{method}: {result.target} ({float(probs[index]):.2f})")
        result.out = out
    return result


def write_overlay(picture: Image.Image, heatmap: np.ndarray, path: Path, title: str) -> None:
    """The heat map (jet, semi-transparent) over the whole original image, at the image's own size."""
    import matplotlib

    width, height = picture.size
    heat = Image.fromarray((heatmap * 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    coloured = matplotlib.colormaps["jet"](np.asarray(heat) / 255.0)[..., :3]
    blend = 0.55 * np.asarray(picture.convert("RGB"), dtype=np.float32) / 255 + 0.45 * coloured
    overlay = Image.fromarray((np.clip(blend, 0, 1) * 255).astype(np.uint8))
    canvas = Image.new("RGB", (width * 2, height + 24), "white")
    canvas.paste(picture.convert("RGB"), (0, 24))
    canvas.paste(overlay, (width, 24))
    from PIL import ImageDraw

    ImageDraw.Draw(canvas).text((4, 4), title, fill="black")
    with atomic_output(path) as tmp:
        canvas.save(tmp, format="PNG")
