"""The bench's U-Net in PyTorch: the same graph as ours, with a copy of our weights, and its step.

Depth 3, base 16 channels, 1 -> 4 classes, conv3x3+ReLU pairs (no
BatchNorm), 2x2 max pooling, 2x2 stride-2 transposed-conv up, concatenated
skips, a 1x1 head. With the same weights and batch, one step of each gives
the same loss and the same update (``tests/test_bench.py``).
"""
from __future__ import annotations

from .. import backend


def torch_unet_like(model, torch, device="cpu"):
    """The same U-Net as ``model`` in PyTorch, with a copy of its current weights.

    The torch modules carry our layer names, so ``enc0.1.0.w`` is ``enc0.1.0.weight``:
    every double conv is ``Sequential(Sequential(conv, ReLU), Sequential(conv, ReLU))``.
    ``load_state_dict(strict=True)`` fails on any missing, extra or misshapen weight.
    """
    nn = torch.nn
    cfg = model.config
    if cfg["batch_norm"] or cfg["up"] != "transpose" or not cfg["skips"]:
        raise ValueError("torch_unet_like copies only UNet(batch_norm=False, up='transpose', skips=True), "
                         f"got batch_norm={cfg['batch_norm']}, up={cfg['up']!r}, skips={cfg['skips']}")

    def double_conv(c_in, c_out):
        return nn.Sequential(*(nn.Sequential(nn.Conv2d(a, c_out, 3, padding=1), nn.ReLU())
                               for a in (c_in, c_out)))

    class TorchUNet(nn.Module):
        def __init__(self, in_channels, num_classes, base_channels, depth):
            super().__init__()
            self.depth = depth
            widths = [base_channels * 2 ** level for level in range(depth + 1)]
            for level in range(depth):
                self.add_module(f"enc{level}", double_conv(([in_channels] + widths)[level], widths[level]))
                self.add_module(f"up{level}", nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
                self.add_module(f"dec{level}", double_conv(2 * widths[level], widths[level]))
            self.bottleneck = double_conv(widths[depth - 1], widths[depth])
            self.head = nn.Conv2d(base_channels, num_classes, 1)

        def forward(self, x):
            features = []
            for level in range(self.depth):
                x = getattr(self, f"enc{level}")(x)
                features.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = self.bottleneck(x)
            for level in reversed(range(self.depth)):
                x = torch.cat([features[level], getattr(self, f"up{level}")(x)], dim=1)
                x = getattr(self, f"dec{level}")(x)
            return self.head(x)

    net = TorchUNet(cfg["in_channels"], cfg["num_classes"], cfg["base_channels"], cfg["depth"])
    names = {"w": "weight", "b": "bias"}
    state = {}
    for name, value in model.named_parameters():
        prefix, key = name.rsplit(".", 1)
        state[f"{prefix}.{names[key]}"] = torch.from_numpy(backend.to_numpy(value).copy())
    net.load_state_dict(state, strict=True)
    return net.to(device)


def torch_training_step(net, optimizer, x, y, torch):
    """One SGD step of the torch twin, as ``train.train_step`` does ours; the loss stays a 0-d tensor."""
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    optimizer.step()
    return loss
