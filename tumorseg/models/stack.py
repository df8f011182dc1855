"""Slice-stack U-Net: the 2.5D input read as a stack of slices, mixed inside the net instead of at its first layer.

The 2.5D U-Net (data.context_slices=c, model=unet) sees slices K-c..K+c as channels of its first convolution
only. Here one 2D encoder is shared over the 2c+1 slices (each a one-channel image), and at every level a short
stack of 3 x 1 x 1 convolutions fuses the slices' features into the centre slice's skip; the U-Net decoder then
predicts slice K. The input is the same N x (2c+1) x H x W batch as the 2.5D data's.
"""

import torch
from torch import nn

from tumorseg.errors import UserError
from tumorseg.models.unet import NORMS, UNet


class StackConv(nn.Module):
    """A valid 3 x 1 x 1 convolution over the stack axis, then [norm]: N x S x C x H x W -> N x (S-2) x C x H x W.

    Written as a 1x1 Conv2d over three neighbouring slices' features side by side (the same weights as a Conv3d):
    4D weights, so the net keeps channels_last (module.channels_last) and 2D kernels.
    """

    def __init__(self, channels: int, norm: str):
        super().__init__()
        norm_layer = NORMS[norm]
        self.conv = nn.Conv2d(3 * channels, channels, 1, bias=norm_layer is None)
        self.norm = norm_layer(channels, affine=True) if norm_layer is not None else nn.Identity()

    @property
    def last(self) -> nn.Module:
        """The layer whose weights scale the output (the norm's, else the conv's)."""
        return self.conv if isinstance(self.norm, nn.Identity) else self.norm

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        n, s, c, h, w = stack.shape
        windows = torch.cat([stack[:, k:s - 2 + k] for k in range(3)], dim=2)  # N x (S-2) x 3C x H x W
        y = self.norm(self.conv(windows.reshape(n * (s - 2), 3 * c, h, w)))
        return y.reshape(n, s - 2, c, h, w)


class StackFuse(nn.Module):
    """N x S x C x H x W slice stack -> N x C x H x W: the centre slice's features plus a learned mix of the stack.

    (S - 1) / 2 StackConvs (S -> S-2 -> ... -> 1), ReLU between; the last one starts at zero, so an untrained
    net reads the centre slice as the 2D U-Net does.
    """

    def __init__(self, channels: int, slices: int, norm: str):
        super().__init__()
        self.mix = nn.ModuleList(StackConv(channels, norm) for _ in range((slices - 1) // 2))
        nn.init.zeros_(self.mix[-1].last.weight)
        if self.mix[-1].last.bias is not None:
            nn.init.zeros_(self.mix[-1].last.bias)
        self.act = nn.ReLU(inplace=True)

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        centre, y = stack[:, stack.shape[1] // 2], stack
        for i, conv in enumerate(self.mix):
            y = conv(y) if i == 0 else conv(self.act(y))
        return self.act(centre + y[:, 0])


class SliceStackUNet(UNet):
    """U-Net whose encoder runs on each of the 2c+1 input slices, fused at every skip level (StackFuse).

    Input N x (2c+1) x H x W (in_channels = 1 + 2 * data.context_slices, at least 3); output N x out_channels x H x W
    logits for the centre slice. Other options as UNet's; parameters: the 2D U-Net's (one input channel) plus
    3 * (S - 1) / 2 * width^2 per level (S = in_channels).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, base_channels: int = 16, depth: int = 4,
                 norm: str = "batch", up: str = "transpose", dropout: float = 0.0, prior: float | None = None,
                 flat_steps: int = 0):
        if in_channels < 3 or in_channels % 2 == 0:
            raise UserError(f"model=stack_unet needs a stack of slices: data.context_slices >= 1 (model.in_channels="
                            f"{in_channels}, 1 + 2 * data.context_slices)")
        super().__init__(1, out_channels, base_channels, depth, norm, up, dropout, prior, flat_steps)
        self.fuse = nn.ModuleList(StackFuse(conv.out_channels, in_channels, norm) for conv in self.encoder_convs())

    def encoder_convs(self) -> list[nn.Conv2d]:
        """The last convolution of each encoder level (its width is the level's)."""
        levels = [self.inc, *(down[1] for down in self.downs)]
        return [[m for m in level if isinstance(m, nn.Conv2d)][-1] for level in levels]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s = x.shape[:2]
        features = [self.inc(x.reshape(n * s, 1, *x.shape[2:]))]  # every slice through the shared encoder
        for down in self.downs:
            features.append(down(features[-1]))
        skips = [fuse(f.reshape(n, s, *f.shape[1:])) for fuse, f in zip(self.fuse, features)]
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.outc(y)
