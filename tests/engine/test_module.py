"""ActionClassifier's optimiser groups (timm's split, as the hand-written one was) and mixup/cutmix on clips."""

from __future__ import annotations

import pytest
import torch

from actiscope.engine.module import ActionClassifier, progressive_size
from actiscope.options import ModelOptions, OptimOptions


def _hand_written_groups(module: ActionClassifier) -> list[tuple[list[int], float, float]]:
    """The groups as configure_optimizers built them by hand before timm did: per trained part (backbone,
    head), the parameters with more than one dimension with weight decay, then the rest without."""
    hp = module.optim
    backbone_lr = hp.lr * (hp.backbone_lr_mult if hp.mode == "finetune" else 1.0)
    groups = []
    for part, lr in ((module.model.backbone, backbone_lr), (module.model.head, hp.lr)):
        if hp.mode == "linear" and part is module.model.backbone:
            continue
        params = list(part.parameters())
        groups += [
            ([id(p) for p in params if p.ndim > 1], lr, hp.weight_decay),
            ([id(p) for p in params if p.ndim <= 1], lr, 0.0),
        ]
    return [g for g in groups if g[0]]


@pytest.mark.parametrize("architecture", ["simple-cnn", "resnet18", "cnn-lstm"])
@pytest.mark.parametrize(
    "options",
    [{"mode": "scratch"}, {"mode": "finetune", "freeze": 0.5}, {"mode": "linear"}, {"weight_decay": 0.0}],
)
def test_timm_groups_are_the_hand_written_ones(architecture: str, options: dict[str, object]) -> None:
    optim = OptimOptions(lr=1e-2, backbone_lr_mult=0.1, scheduler="none", **options)
    module = ActionClassifier(ModelOptions(architecture), optim, ["a", "b", "c"], channels_last=False)
    expected = _hand_written_groups(module)
    module.on_train_epoch_start()  # freezes what the mode keeps fixed, as a first fit in this process did
    for _ in range(2):  # a second fit (the bf16 -> fp32 retry) builds the same groups as the first
        groups = module.configure_optimizers()["optimizer"].param_groups
        assert [([id(p) for p in g["params"]], g["lr"], g["weight_decay"]) for g in groups] == expected
    assert len(expected) == (2 if options.get("mode") == "linear" else 4)


def test_mixup_blends_whole_clips_and_their_targets() -> None:
    torch.manual_seed(0)
    module = ActionClassifier(
        ModelOptions("frame-avg", frames=4, image_size=16),
        OptimOptions(mixup=1.0),
        ["a", "b"],
        channels_last=False,
    )
    x = torch.stack([torch.zeros(4, 3, 16, 16), torch.ones(4, 3, 16, 16)])
    mixed, target = module.mix(x, torch.tensor([0, 1]))
    assert type(mixed) is torch.Tensor and mixed.shape == x.shape and target.shape == (2, 2)
    # every pixel of every frame of clip 0 is the same blend, and its target says how much of each clip
    share = mixed[0].flatten().unique()
    assert len(share) == 1 and 0 < share.item() < 1
    assert target[0].tolist() == pytest.approx([1 - share.item(), share.item()])
    assert module.training_step((x, torch.tensor([0, 1])), 0).isfinite()


def test_cutmix_pastes_the_same_box_into_every_frame() -> None:
    torch.manual_seed(1)
    module = ActionClassifier(
        ModelOptions("frame-avg", frames=4, image_size=16),
        OptimOptions(cutmix=1.0),
        ["a", "b"],
        channels_last=False,
    )
    x = torch.stack([torch.zeros(4, 3, 16, 16), torch.ones(4, 3, 16, 16)])
    mixed, target = module.mix(x, torch.tensor([0, 1]))
    box = mixed[0] != 0  # where clip 1 was pasted into clip 0
    assert box.any() and not box.all()
    assert all(torch.equal(box[t], box[0]) for t in range(4))  # the same box in every frame
    assert target[0, 1].item() == pytest.approx(box.float().mean().item())


def test_without_mixup_the_batch_is_unchanged() -> None:
    module = ActionClassifier(ModelOptions(), OptimOptions(), ["a", "b"], channels_last=False)
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    mixed, target = module.mix(x, y)
    assert mixed is x and target is y


def test_progressive_size_grows_from_the_start_fraction_to_full_by_three_quarters() -> None:
    sizes = [progressive_size(160, 0.5, p / 100) for p in range(101)]
    assert sizes[0] == 80 and sizes[74] < 160 and set(sizes[75:]) == {160}
    assert sizes == sorted(sizes) and len(set(sizes)) > 3  # it grows, in several steps
    assert all(s % 16 == 0 for s in sizes)
    assert progressive_size(112, 1.0, 0.0) == 112  # a start of the full size is no resizing
    assert progressive_size(64, 0.25, 0.0) == 32  # never under 32


def test_progressive_training_sees_small_batches_first_and_full_size_at_the_end() -> None:
    """--progressive 0.5 in a real fit: the network's training inputs start at half the size, grow, and
    the last quarter of the steps and every validation batch are at the full 64 px."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    module = ActionClassifier(
        ModelOptions("simple-cnn", image_size=64), OptimOptions(progressive=0.5), ["a", "b"]
    )
    seen: list[tuple[bool, int]] = []
    module.model.register_forward_pre_hook(lambda m, args: seen.append((m.training, args[0].shape[-1])))
    data = TensorDataset(torch.randn(32, 3, 64, 64), torch.randint(0, 2, (32,)))
    trainer = L.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, DataLoader(data, batch_size=8), DataLoader(data, batch_size=16))
    train_sizes = [size for training, size in seen if training]
    assert len(train_sizes) == 16 and train_sizes[0] == 32 and train_sizes == sorted(train_sizes)
    assert set(train_sizes[12:]) == {64} and len(set(train_sizes)) >= 3
    assert {size for training, size in seen if not training} == {64}
