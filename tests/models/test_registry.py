from __future__ import annotations

import pytest
import torch

from actiscope.models.entry import UnknownModelError
from actiscope.models.registry import REGISTRY, create_model, get_entry, list_models, register

EXPECTED = {
    "simple-cnn",
    "vgg16",
    "resnet18",
    "resnet50",
    "googlenet",
    "densenet121",
    "efficientnet_b0",
    "efficientnet_b3",
    "mobilenet_v3_large",
    "convnext_tiny",
    "mobilenet_v2",
    "squeezenet1_0",
    "squeezenet1_1",
    "shufflenet_v2_x1_0",
    "regnet_y_400mf",
    "mnasnet1_0",
}


def test_registry_lists_every_required_architecture() -> None:
    assert {e.name for e in list_models("image")} >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_entry_has_the_same_interface(name: str) -> None:
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = create_model(name, num_classes=7)
        x = torch.empty(2, 3, 64, 64)
        features = model.forward_features(x)
        assert features.shape == (2, model.num_features)
        assert model.forward_head(features).shape == (2, 7)
        assert model(x).shape == (2, 7)
        model.reset_classifier(4)
        assert model(x).shape == (2, 4)
    assert model.data_config.image_size == get_entry(name).data_config.image_size
    assert len(model.data_config.mean) == len(model.data_config.std) == 3
    model.backbone.get_submodule(model.cam_layer)  # the Grad-CAM layer exists


def test_image_size_override_and_timm_models() -> None:
    model = create_model("simple-cnn", 3, image_size=32)
    assert model.data_config.image_size == 32
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    timm_model = create_model("timm/resnet18", 5)
    assert timm_model.architecture == "timm/resnet18"
    assert timm_model.classifier_key == "fc"
    assert timm_model(torch.zeros(1, 3, 64, 64)).shape == (1, 5)


def test_typos_get_close_names() -> None:
    with pytest.raises(UnknownModelError, match="did you mean resnet18"):
        get_entry("resnet-18")
    with pytest.raises(UnknownModelError, match="efficientnet_b0"):
        get_entry("efficientnetb0")
    with pytest.raises(UnknownModelError, match="unknown timm model 'resnet1800'"):
        get_entry("timm/resnet1800")


def test_duplicate_registration_is_an_error() -> None:
    list_models()
    with pytest.raises(ValueError, match="already registered"):
        register("resnet18", data_config=REGISTRY["resnet18"].data_config, description="again")(lambda: None)


def test_fewer_than_two_classes_refused() -> None:
    with pytest.raises(Exception, match="at least 2 classes"):
        create_model("simple-cnn", 1)


def test_batchnorm_statistics_follow_the_data_within_a_short_budget() -> None:
    """torchvision's MobileNetV3 tracks batch-norm statistics with momentum 0.01: after a short CPU run
    they would still be the initial ones, and evaluation would sit at chance."""
    import torch
    from torch import nn

    from actiscope.models.registry import create_model

    model = create_model("mobilenet_v3_large", 3, image_size=32)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum >= 0.1 for m in norms)
    model.train()
    shifted = torch.randn(8, 3, 32, 32) * 3 + 5
    for _ in range(30):
        model(shifted)
    first = norms[0]
    with torch.no_grad():
        stem = model.backbone.features[0][0](shifted)  # the first convolution, before its batch norm
    assert torch.allclose(first.running_mean, stem.mean(dim=(0, 2, 3)), rtol=0.1, atol=0.1)
