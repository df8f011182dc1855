"""U-Net (Ronneberger et al., 2015) written from scratch, with 'same' padding."""

import math

import torch
from torch import nn

from tumorseg.errors import UserError

NORMS = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d, "none": None}
UPS = ("transpose", "bilinear")


def check_image_size(image_size: int, depth: int, option: str = "data.image_size") -> None:
    """Refuse an input size (the setting `option`) that the encoder cannot halve `depth` times without remainder."""
    step = 2**depth
    if image_size % step:
        fits = ", ".join(str(s) for s in (image_size // step * step, (image_size // step + 1) * step) if s)
        raise UserError(
            f"{option}={image_size} is not divisible by 2**model.depth={step}: "
            f"use {option}={fits.replace(', ', ' or ')} or a smaller model.depth"
        )


class DoubleConv(nn.Sequential):
    """(conv 3x3 => [norm] => ReLU) * 2, then optional dropout."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "batch", dropout: float = 0.0):
        norm_layer = NORMS[norm]
        layers: list[nn.Module] = []
        for ch in (in_ch, out_ch):
            # A conv followed by a norm needs no bias; without a norm it does (as in the paper).
            layers.append(nn.Conv2d(ch, out_ch, 3, padding=1, bias=norm_layer is None))
            if norm_layer is not None:
                layers.append(norm_layer(out_ch, affine=True))
            layers.append(nn.ReLU(inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class Down(nn.Sequential):
    """Max-pool 2x2, then a double conv."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, dropout: float = 0.0):
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_ch, out_ch, norm, dropout))


class Up(nn.Module):
    """Up-sample x2 halving the channels, concatenate the skip (out_ch wide), then a double conv."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, up: str):
        super().__init__()
        if up == "transpose":
            self.up = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_ch, in_ch // 2, kernel_size=1),
            )
        # in_ch // 2 + out_ch == in_ch where widths double; less where they stay (flat_steps).
        self.conv = DoubleConv(in_ch // 2 + out_ch, out_ch, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """Encoder of `depth` down steps, bottleneck, mirrored decoder with skips, 1x1 conv to logits.

    prior: initial foreground probability of the output (bias init); None keeps PyTorch's default.
    flat_steps: the first down steps that keep base_channels instead of doubling them (cheap
    high-resolution levels: 0 gives the paper's widths).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        norm: str = "batch",
        up: str = "transpose",
        dropout: float = 0.0,
        prior: float | None = None,
        flat_steps: int = 0,
    ):
        super().__init__()
        if norm not in NORMS:
            raise UserError(f"model.norm={norm!r} is not one of {sorted(NORMS)}")
        if up not in UPS:
            raise UserError(f"model.up={up!r} is not one of {list(UPS)}")
        if depth < 1 or base_channels < 1:
            raise UserError(f"model.depth ({depth}) and model.base_channels ({base_channels}) must be >= 1")
        if not 0 <= flat_steps <= depth:
            raise UserError(f"model.flat_steps={flat_steps} must be between 0 and model.depth={depth}")
        self.depth = depth
        widths = [base_channels * 2 ** max(0, i - flat_steps) for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0], norm)
        # Dropout only in the bottleneck, where the original U-Net put it.
        self.downs = nn.ModuleList(
            Down(widths[i], widths[i + 1], norm, dropout if i == depth - 1 else 0.0) for i in range(depth)
        )
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i], norm, up) for i in reversed(range(depth)))
        self.outc = nn.Conv2d(widths[0], out_channels, kernel_size=1)
        if prior is not None:
            # Start at the tumor prior instead of p=0.5 everywhere: Adam moves a bias ~lr per step,
            # so from 0 it would take thousands of steps to reach log(0.01/0.99) = -4.6.
            nn.init.constant_(self.outc.bias, math.log(prior / (1 - prior)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)
