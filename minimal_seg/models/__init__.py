"""The lecture's architectures, each with a hand-written backward pass.

``build_model(name, in_channels, num_classes, **options)`` makes one by name:
"""
from __future__ import annotations

from .base import Model
from .deeplab import DeepLab
from .fcn import FCN
from .fpn import FPN
from .linknet import LinkNet
from .pspnet import PSPNet
from .segnet import SegNet
from .unet import UNet

MODELS = {
    "unet": lambda **kw: UNet(**kw),
    "fcn32s": lambda **kw: FCN(variant="32s", **kw),
    "fcn16s": lambda **kw: FCN(variant="16s", **kw),
    "fcn8s": lambda **kw: FCN(variant="8s", **kw),
    "segnet": lambda **kw: SegNet(**kw),
    "linknet": lambda **kw: LinkNet(**kw),
    "deeplab": lambda **kw: DeepLab(**kw),
    "pspnet": lambda **kw: PSPNet(**kw),
    "fpn": lambda **kw: FPN(**kw),
}


def build_model(name: str, **kwargs) -> Model:
    """Model by name (see ``MODELS``); an unknown name raises ValueError listing the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    model = MODELS[name](**kwargs)
    model.config["model"] = name
    return model


__all__ = ["Model", "FCN", "UNet", "SegNet", "LinkNet", "DeepLab", "PSPNet", "FPN", "MODELS", "build_model"]
