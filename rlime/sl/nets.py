"""Classifier builders (float `nn.Module`s; the backend places them on the chip with `to_rram`).

Both take (1, H, W) images of 8-bit codes (`CodeInput`: on the chip the codes drive the first
layer's DACs as they are) and end in `classes` logits; activations are ReLUs (digital
periphery on the chip), pooling is average pooling (LeNet-5's subsampling; digital periphery).

* `mlp`: flatten, then Linear + ReLU per hidden width, then Linear (784-100-10 on MNIST,
  MLP+NeuroSim's network; 64-64-10 on digits).
* `lenet`: LeNet-5 (LeCun et al., Proc. IEEE 1998): conv 6 maps -> 2 x 2 average pooling ->
  conv 16 maps -> 2 x 2 average pooling -> 120 -> 84 -> classes. On images of at least 28
  pixels the kernels are 5 x 5 and the first convolution pads by 2 (LeNet-5's 32 x 32 input is
  MNIST's 28 x 28 padded by 2); on smaller images (digits, 8 x 8) 3 x 3 kernels padded by 1, so
  both subsamplings fit.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from rlime.common.errors import lookup
from rlime.hw.layers import CodeInput, CrossbarLayer

NETWORKS = ("mlp", "lenet")


def mlp(input_shape: Sequence[int], classes: int, hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = [CodeInput(), nn.Flatten()]
    width = 1
    for size in input_shape:
        width *= size
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, classes))


def lenet(input_shape: Sequence[int], classes: int, hidden: Sequence[int] = ()) -> nn.Sequential:
    channels, height, width = input_shape
    kernel, pad = (5, 2) if min(height, width) >= 28 else (3, 1)
    side = [height, width]
    for conv_pad in (pad, pad if kernel == 3 else 0):   # two conv + pool stages
        side = [(s + 2 * conv_pad - kernel + 1) // 2 for s in side]
    return nn.Sequential(
        CodeInput(),
        nn.Conv2d(channels, 6, kernel, padding=pad), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, kernel, padding=pad if kernel == 3 else 0), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side[0] * side[1], 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, classes),
    )


def build_network(kind: str, input_shape: Sequence[int], classes: int,
                  hidden: Sequence[int]) -> nn.Sequential:
    """The `kind` network ("mlp" or "lenet"; `hidden` only for the MLP)."""
    return lookup({"mlp": mlp, "lenet": lenet}, kind, "network")(input_shape, classes, hidden)


def layer_counts(network: nn.Module) -> tuple[int, int]:
    """(weight layers, pooling layers) of a network, float or on the chip (for the GPU's
    kernel-launch count)."""
    modules = list(network.modules())
    weights = sum(isinstance(m, (nn.Linear, nn.Conv2d, CrossbarLayer)) for m in modules)
    # on the chip a PeripheryPool wraps the float pool: that one is counted
    return weights, sum(isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) for m in modules)
