"""DeepLabV3+ (Chen et al., 2018) written from scratch: a small ResNet encoder at output stride 16, ASPP, and the
V3+ decoder that refines the upsampled context with stride-4 low-level features."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from tumorseg.errors import UserError

OUTPUT_STRIDE_DEPTH = 4  # output stride 16 = 2**4: inputs must divide by it (check_image_size reads model.depth)
# Narrower, the first stage's 1x1 stride-2 shortcut (base_channels in) corrupts memory in the backward pass of
# oneDNN's AVX2 kernels in channels_last (PyTorch 2.13, one thread: 2 to 7 input channels), a crash on laptops.
MIN_WIDTH = 8


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """conv (same padding) => BatchNorm => ReLU."""
    padding = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs and an identity (or 1x1 projection) shortcut, ReLU after the sum."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = conv_bn_relu(in_ch, out_ch, 3, stride, dilation)
        self.conv2 = nn.Sequential(nn.Conv2d(out_ch, out_ch, 3, 1, dilation, dilation, bias=False),
                                   nn.BatchNorm2d(out_ch))
        self.shortcut = nn.Identity() if stride == 1 and in_ch == out_ch else nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class Encoder(nn.Module):
    """ResNet-style backbone: stem (/2), stages at /4 (low-level features), /8, /16, and a last stage kept at /16
    with dilation 2 (atrous convolution instead of a stride). Returns (low: width x H/4, high: 8 width x H/16)."""

    def __init__(self, in_ch: int, width: int, blocks: int):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(in_ch, width, stride=2), conv_bn_relu(width, width))
        widths, strides, dilations = (width, 2 * width, 4 * width, 8 * width), (2, 2, 2, 1), (1, 1, 1, 2)
        stages, prev = [], width
        for w, stride, dilation in zip(widths, strides, dilations):
            stages.append(nn.Sequential(BasicBlock(prev, w, stride, dilation),
                                        *(BasicBlock(w, w, 1, dilation) for _ in range(blocks - 1))))
            prev = w
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        low = x = self.stages[0](x)
        for stage in self.stages[1:]:
            x = stage(x)
        return low, x


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global average, 1x1 conv => BN => ReLU, broadcast back to the map's size."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.project = conv_bn_relu(in_ch, out_ch, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(F.adaptive_avg_pool2d(x, 1)).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1 conv, 3x3 convs at each rate, image pooling; concatenated, 1x1 projection."""

    def __init__(self, in_ch: int, out_ch: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(in_ch, out_ch, kernel=1),
                                       *(conv_bn_relu(in_ch, out_ch, dilation=r) for r in rates),
                                       ImagePooling(in_ch, out_ch)])
        self.project = conv_bn_relu(out_ch * len(self.branches), out_ch, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class Decoder(nn.Module):
    """V3+ decoder: context upsampled to the low-level features' stride 4, concatenated with their 1x1 reduction,
    two 3x3 convs, 1x1 classifier (logits at stride 4)."""

    def __init__(self, context_ch: int, low_ch: int, reduced_ch: int, out_ch: int):
        super().__init__()
        self.reduce = conv_bn_relu(low_ch, reduced_ch, kernel=1)
        self.refine = nn.Sequential(conv_bn_relu(context_ch + reduced_ch, context_ch),
                                    conv_bn_relu(context_ch, context_ch))
        self.classifier = nn.Conv2d(context_ch, out_ch, 1)

    def forward(self, context: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        context = F.interpolate(context, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.refine(torch.cat([context, self.reduce(low)], dim=1)))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+: N x in_channels x H x W -> N x out_channels x H x W logits (H, W divisible by 16).

    base_channels: the encoder's first width (stages base, 2, 4, 8 x base); blocks: basic blocks per stage;
    aspp_channels: width of ASPP and the decoder; low_level_channels: the low-level features' 1x1 reduction (48
    in the paper); prior: initial foreground probability (classifier bias); depth: fixed at 4 (output stride 16),
    kept so that the input size check reads it as the U-Net's.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_channels: int = 20, blocks: int = 2,
                 aspp_channels: int = 128, rates: tuple[int, ...] = (6, 12, 18), low_level_channels: int = 32,
                 prior: float | None = None, depth: int = OUTPUT_STRIDE_DEPTH):
        super().__init__()
        if depth != OUTPUT_STRIDE_DEPTH:
            raise UserError(f"model.depth={depth}: model=deeplabv3 has output stride 16, model.depth=4")
        if min(blocks, aspp_channels, low_level_channels) < 1:
            raise UserError("model.blocks, model.aspp_channels and model.low_level_channels of model=deeplabv3 "
                            "must be >= 1")
        if base_channels < MIN_WIDTH:
            raise UserError(f"model.base_channels={base_channels}: model=deeplabv3 needs >= {MIN_WIDTH}: e.g. "
                            f"model.base_channels={MIN_WIDTH}")
        self.depth = depth
        self.encoder = Encoder(in_channels, base_channels, blocks)
        self.aspp = ASPP(8 * base_channels, aspp_channels, tuple(int(r) for r in rates))
        self.decoder = Decoder(aspp_channels, base_channels, low_level_channels, out_channels)
        if prior is not None:
            nn.init.constant_(self.decoder.classifier.bias, math.log(prior / (1 - prior)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.encoder(x)            # stride 4 and stride 16 features
        context = self.aspp(high)              # multi-rate context at stride 16
        logits = self.decoder(context, low)    # upsample x4, concat low-level, refine, classify (stride 4)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
