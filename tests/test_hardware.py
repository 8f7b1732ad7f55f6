"""`--precision auto`: flags, what is known to break, a measured probe, its cache, and the fallback.

The suite pins the CPU to "no native bf16" (tests/conftest.py), so no outcome depends on the machine;
these tests simulate a bf16-capable CPU by patching the flag detection, and run the real probe.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from actiscope import hardware
from actiscope.engine.fit import train
from actiscope.engine.module import ActionClassifier, NonFiniteLossError
from actiscope.hardware import CpuInfo, ProbeResult, choose_precision, cpu_info
from actiscope.models.registry import create_model, example_input
from actiscope.options import TrainOptions

AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n\n"
BF16 = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: avx2 avx512f avx512_bf16 avx512_vnni\n\n"
AMX = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: avx2 avx512f amx_bf16 amx_tile amx_int8\n\n"
BF16_CPU = CpuInfo("simulated EPYC", frozenset({"avx2", "avx512_bf16"}))


@pytest.mark.parametrize(
    ("text", "native", "flags"), [(AVX2, False, []), (BF16, True, ["avx512_bf16"]), (AMX, True, ["amx_bf16"])]
)
def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path, text: str, native: bool, flags: list[str]) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(text * 2)  # one block per core
    info = cpu_info.__wrapped__(path)
    assert info.native_bf16 is native and info.bf16_flags == flags
    assert info.model.startswith(("AMD", "Intel"))


def test_explicit_choices_are_obeyed() -> None:
    assert choose_precision("32", "cpu").precision == "32-true"
    explicit = choose_precision("bf16", "cpu")
    assert explicit.precision == "bf16-mixed" and not explicit.automatic


def test_auto_without_native_bf16_is_fp32_without_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_info", lambda: CpuInfo("avx2 only", frozenset({"avx2"})))
    monkeypatch.setattr(hardware, "probe_training", _must_not_probe)
    model = create_model("simple-cnn", 3, image_size=32)
    choice = choose_precision("auto", "cpu", model=model, example=example_input(model.data_config, 4))
    assert choice.precision == "32-true" and "no native bf16" in choice.line()


def test_auto_keeps_3d_convolutions_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_info", lambda: BF16_CPU)
    monkeypatch.setattr(hardware, "probe_training", _must_not_probe)
    model = create_model("r3d_18", 3, image_size=32, frames=4)
    choice = choose_precision("auto", "cpu", model=model, example=example_input(model.data_config, 2))
    assert choice.precision == "32-true" and "3D convolutions" in choice.reason


@pytest.mark.parametrize(
    ("probe", "precision", "reason"),
    [
        (
            ProbeResult(1.0, 0.5, True, 0.01),
            "bf16-mixed",
            "bf16 2.00x fp32 for training, finite and agreeing",
        ),
        (ProbeResult(1.0, 1.2, True, 0.01), "32-true", "not enough faster"),
        (ProbeResult(1.0, 0.5, False, 0.01), "32-true", "non-finite"),
        (ProbeResult(1.0, 0.5, True, 0.4), "32-true", "disagreed with fp32 by 0.400"),
    ],
)
def test_auto_follows_the_probe_and_caches_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, probe: ProbeResult, precision: str, reason: str
) -> None:
    calls = []
    monkeypatch.setattr(hardware, "cpu_info", lambda: BF16_CPU)
    monkeypatch.setattr(hardware, "probe_training", lambda model, x: calls.append(x.shape) or probe)
    model = create_model("simple-cnn", 3, image_size=32)
    example, cache = example_input(model.data_config, 4), tmp_path / "precision.json"
    first = choose_precision("auto", "cpu", model=model, example=example, cache=cache)
    assert first.precision == precision and reason in first.reason and first.automatic
    again = choose_precision("auto", "cpu", model=model, example=example, cache=cache)
    assert again.precision == precision and "cached probe" in again.reason
    assert len(calls) == 1 and "simple-cnn|4x3x32x32" in cache.read_text()
    # another input shape, or inference instead of training, is measured on its own
    monkeypatch.setattr(hardware, "probe_inference", lambda model, x: calls.append(x.shape) or probe)
    choose_precision("auto", "cpu", model=model, example=example, cache=cache, training=False)
    choose_precision("auto", "cpu", model=model, example=example_input(model.data_config, 8), cache=cache)
    assert len(calls) == 3


def test_the_real_probe_measures_both_ways() -> None:
    """Emulated on a CPU without bf16 (slow), native where it has it: the small CNN stays finite."""
    model = create_model("simple-cnn", 3, image_size=32)
    x = example_input(model.data_config, 4)
    for result in (hardware.probe_training(model, x, steps=1), hardware.probe_inference(model, x, steps=1)):
        assert result.finite and result.loss_difference < 0.05
        assert result.fp32_s > 0 and result.bf16_s > 0
    bad = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 3))
    with torch.no_grad():
        bad[1].weight.fill_(1e38)  # overflows to inf in bf16 and fp32 alike
    assert not hardware.probe_inference(bad, x, steps=1).finite


def _must_not_probe(*args: object) -> ProbeResult:
    raise AssertionError("the probe ran where flags alone decide")


def _nan_under_bf16_at(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """The first bf16 batch of `epoch` gets NaN pixels: the module's own check raises, as a real
    overflow would."""
    original = ActionClassifier.training_step

    def step(
        self: ActionClassifier, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        if self.trainer.precision == "bf16-mixed" and self.current_epoch == epoch and batch_idx == 0:
            x = torch.full_like(x, float("nan"))
        return original(self, (x, y), batch_idx)

    monkeypatch.setattr(ActionClassifier, "training_step", step)


TINY = {
    "model": "simple-cnn",
    "image_size": 32,
    "batch_size": 16,
    "workers": 0,
    "export": "none",
    "cache": False,
    "augment": "none",
    "lr": 3e-3,
}


@pytest.mark.parametrize(("epoch", "back_to"), [(1, "the last whole epoch"), (0, "the start")])
def test_automatic_bf16_falls_back_to_fp32_on_a_non_finite_loss(
    monkeypatch: pytest.MonkeyPatch,
    colour_data: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    epoch: int,
    back_to: str,
) -> None:
    monkeypatch.setattr(hardware, "cpu_info", lambda: BF16_CPU)
    monkeypatch.setattr(hardware, "probe_training", lambda model, x: ProbeResult(1.0, 0.5, True, 0.0))
    _nan_under_bf16_at(monkeypatch, epoch)
    config = TrainOptions.from_flat(data=str(colour_data), epochs=3, out=str(tmp_path), name="r", **TINY)
    with caplog.at_level("INFO", logger="actiscope"):
        result = train(config)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("precision: bf16 autocast (probe: bf16 2.00x fp32") for line in lines)
    assert (
        f"non-finite loss at epoch {epoch}, batch 0 under automatic bf16: back to {back_to}, continuing in fp32"
        in lines
    )
    m = result.metrics
    assert (
        m["precision"] == "32-true"
        and m["precision_fallback"] == f"bf16 -> fp32 after a non-finite loss at epoch {epoch}, batch 0"
    )
    history = (result.run_dir / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["1", "2", "3"]  # every epoch, once
    assert m["test_acc"] > 0.9  # the colour task is learnt: the fp32 run went on from good weights
    meta = (result.run_dir / "model" / "model.json").read_text()
    assert '"precision_fallback"' in meta


def test_explicit_bf16_keeps_the_clear_error(
    monkeypatch: pytest.MonkeyPatch, colour_data: Path, tmp_path: Path
) -> None:
    _nan_under_bf16_at(monkeypatch, 0)
    config = TrainOptions.from_flat(
        data=str(colour_data), epochs=2, precision="bf16", out=str(tmp_path), name="r", **TINY
    )
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 0, batch 0; lower --lr"):
        train(config)


def test_torch_backend_follows_the_same_rule(monkeypatch: pytest.MonkeyPatch, trained_run: Path) -> None:
    from actiscope.predict import Predictor, TorchBackend

    monkeypatch.setattr(hardware, "cpu_info", lambda: BF16_CPU)
    monkeypatch.setattr(hardware, "probe_inference", lambda model, x: ProbeResult(1.0, 0.4, True, 0.001))
    assert TorchBackend(trained_run).choice.precision == "bf16-mixed"
    monkeypatch.setattr(hardware, "probe_inference", lambda model, x: ProbeResult(1.0, 1.1, True, 0.001))
    monkeypatch.setenv("ACTISCOPE_CACHE", str(trained_run / "other-cache"))  # measured again
    runner = TorchBackend(trained_run)
    assert runner.choice.precision == "32-true" and "not enough faster" in runner.choice.reason
    assert not TorchBackend(trained_run, bf16=False).choice.bf16
    probs = Predictor.load(trained_run, backend="torch").probabilities(
        example_input(runner.model.data_config, 2).numpy()
    )
    assert probs.shape == (2, 3)
