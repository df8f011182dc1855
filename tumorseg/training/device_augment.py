"""augment=all on the training device: the same transforms and ranges as conf/augment/all.yaml, on whole batches.

The CPU version (albumentations, in the loader workers) acts on the 8-bit slice; this one acts on the normalized
batch after it reached the device, so its loaders only index a cache. How each step matches the CPU one:
- flip: left-right, p=0.5;
- affine: rotation about the centre, x and y scale drawn apart (albumentations' keep_ratio=False), a shift of a
  whole number of pixels (albumentations truncates translate_percent * size), p=0.5;
- elastic: a standard-normal field per sample divided by its largest magnitude, Gaussian-smoothed (kernel
  8 sigma + 1, edges replicated, as cv2.GaussianBlur), times alpha, p=0.3; with alpha 30 and sigma 6 it moves
  pixels by ~0.3 px rms, as the CPU one does;
- affine and elastic are one resampling here (two on the CPU): bilinear for the image, nearest for the mask, the
  outside filled with the normalized value of an 8-bit 0 (border_mode=0 fills the 8-bit slice with 0, i.e. air);
- brightness/contrast: u' = clip(alpha * u + beta, 0, 1) on the [0, 1] slice u = x * std + mean (albumentations'
  brightness_by_max), p=0.5, image only; unlike the CPU one it is not rounded to 8 bits.
"""

import torch
from torch import nn
from torch.nn import functional as F

from tumorseg.errors import UserError


def chance(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """(n,) bool: each sample drawn with probability p."""
    return torch.rand(n, generator=generator, device=device) < p


def uniform(n: int, low: float, high: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """(n,) floats uniform in [low, high)."""
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def gaussian_blur(fields: torch.Tensor, sigma: float) -> torch.Tensor:
    """M x H x W fields smoothed by a separable Gaussian (cv2.GaussianBlur's float kernel size, edges replicated)."""
    radius = int(round(sigma * 8 + 1)) // 2
    taps = torch.arange(-radius, radius + 1, device=fields.device, dtype=fields.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = fields[:, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return x[:, 0]


def warp(x: torch.Tensor, grid: torch.Tensor, mode: str, fill: float) -> torch.Tensor:
    """x (N x C x H x W) sampled at grid (N x H x W x 2, grid_sample's coordinates); `fill` outside the frame."""
    return F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False) + fill


def inverse_affine_maps(degrees: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, tx: torch.Tensor,
                        ty: torch.Tensor) -> torch.Tensor:
    """N x 2 x 3 maps from an output pixel to the input pixel it reads, in pixels from the centre (all inputs (N,)).

    Forward (albumentations' Affine matrix, y down): q = R S p + t, R = [[cos, sin], [-sin, cos]];
    so p = S^-1 R^T (q - t).
    """
    angle = torch.deg2rad(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rows = torch.stack([torch.stack([cos / sx, -sin / sx], -1), torch.stack([sin / sy, cos / sy], -1)], 1)
    shift = -(rows @ torch.stack([tx, ty], -1)[..., None])
    return torch.cat([rows, shift], -1)


class DeviceAugment(nn.Module):
    """Random flip, affine, elastic and brightness/contrast of a batch on its device, image and mask together.

    image: N x C x H x W normalized ((u - mean) / std, u the slice in [0, 1]); mask: N x 1 x H x W in {0, 1}.
    One geometric transform per sample moves all its C channels (the 2.5D neighbours) and its mask. A
    generator (on the batch's device) makes the draws repeatable; without one the device's global RNG draws.
    """

    def __init__(
        self,
        flip_p: float = 0.5,
        affine_p: float = 0.5,
        rotate: float = 15.0,
        scale: tuple[float, float] = (0.9, 1.1),
        translate: float = 0.05,
        elastic_p: float = 0.3,
        elastic_alpha: float = 30.0,
        elastic_sigma: float = 6.0,
        brightness_p: float = 0.5,
        brightness: float = 0.1,
        contrast: float = 0.1,
        mean: float = 0.5,
        std: float = 0.25,
    ):
        super().__init__()
        for name, p in (("flip_p", flip_p), ("affine_p", affine_p), ("elastic_p", elastic_p),
                        ("brightness_p", brightness_p)):
            if not 0 <= p <= 1:
                raise UserError(f"module.device_augment.{name}={p} must be a probability between 0 and 1")
        if elastic_sigma <= 0 or std <= 0 or min(scale) <= 0:
            raise UserError(f"module.device_augment: elastic_sigma ({elastic_sigma}), std ({std}) and scale "
                            f"({list(scale)}) must be > 0")
        self.flip_p, self.affine_p, self.elastic_p, self.brightness_p = flip_p, affine_p, elastic_p, brightness_p
        self.rotate, self.scale, self.translate = float(rotate), tuple(float(s) for s in scale), float(translate)
        self.elastic_alpha, self.elastic_sigma = float(elastic_alpha), float(elastic_sigma)
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.mean, self.std = float(mean), float(std)

    @property
    def fill(self) -> float:
        """The normalized value of an 8-bit 0: what border_mode=0 puts outside the frame."""
        return -self.mean / self.std

    def forward(self, image: torch.Tensor, mask: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, mask) augmented; same shapes, the mask still 0/1. Draws in a fixed order: repeatable."""
        # In fp32 also inside a bf16-mixed training step: bf16 sampling coordinates would be off by up to a pixel.
        with torch.autocast(image.device.type, enabled=False):
            return self.transform(image.float(), mask.float(), generator)

    def transform(self, image: torch.Tensor, mask: torch.Tensor,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """forward's steps: flip, one resampling for affine and elastic, brightness/contrast."""
        n, device = len(image), image.device
        flip = chance(n, self.flip_p, generator, device)[:, None, None, None]
        image, mask = torch.where(flip, image.flip(-1), image), torch.where(flip, mask.flip(-1), mask)
        affine = chance(n, self.affine_p, generator, device)
        elastic = chance(n, self.elastic_p, generator, device)
        inverse = self.inverse_affine(n, image.shape[-2:], affine, generator)
        moved = (affine | elastic).nonzero()[:, 0]
        if len(moved):
            grid = self.grid(inverse[moved], elastic[moved], image.shape[-2:], generator)
            image, mask = image.clone(), mask.clone()
            image[moved] = warp(image[moved], grid, "bilinear", self.fill)
            mask[moved] = warp(mask[moved], grid, "nearest", 0.0)
        return self.brightness_contrast(image, generator), mask

    def inverse_affine(self, n: int, size: torch.Size, active: torch.Tensor,
                       generator: torch.Generator | None) -> torch.Tensor:
        """N x 2 x 3 drawn inverse affine maps (inverse_affine_maps); identity where `active` is False."""
        device, (h, w) = active.device, size
        angle = uniform(n, -self.rotate, self.rotate, generator, device)
        sx, sy = (uniform(n, *self.scale, generator, device) for _ in range(2))
        tx, ty = (torch.trunc(uniform(n, -self.translate, self.translate, generator, device) * side)
                  for side in (w, h))
        identity = torch.eye(2, 3, device=device).expand(n, 2, 3)
        return torch.where(active[:, None, None], inverse_affine_maps(angle, sx, sy, tx, ty), identity)

    def grid(self, inverse: torch.Tensor, elastic: torch.Tensor, size: torch.Size,
             generator: torch.Generator | None) -> torch.Tensor:
        """M x H x W x 2 sampling grid: each output pixel displaced by the elastic field (where drawn), then mapped by
        its inverse affine, in grid_sample's coordinates (align_corners=False: pixel - centre = coordinate * side/2)."""
        (h, w), device, m = size, inverse.device, len(inverse)
        ys = torch.arange(h, device=device, dtype=inverse.dtype) - (h - 1) / 2
        xs = torch.arange(w, device=device, dtype=inverse.dtype) - (w - 1) / 2
        points = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).expand(m, h, w, 2)
        drawn = elastic.nonzero()[:, 0]
        if len(drawn):
            points = points.clone()
            points[drawn] = points[drawn] + self.displacement(len(drawn), h, w, device, generator)
        mapped = points @ inverse[:, None, :, :2].transpose(-1, -2) + inverse[:, None, None, :, 2]
        return mapped / torch.tensor([w / 2, h / 2], device=device, dtype=inverse.dtype)

    def displacement(self, m: int, h: int, w: int, device: torch.device,
                     generator: torch.Generator | None) -> torch.Tensor:
        """M x H x W x 2 elastic displacements in pixels (albumentations' gaussian noise_distribution)."""
        noise = torch.randn(m, 2, h, w, generator=generator, device=device)
        noise = noise / noise.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)
        fields = gaussian_blur(noise.view(m * 2, h, w), self.elastic_sigma).view(m, 2, h, w)
        return (fields * self.elastic_alpha).permute(0, 2, 3, 1)

    def brightness_contrast(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """u' = clip(alpha * u + beta, 0, 1) on the [0, 1] slice, per drawn sample; image only."""
        n, device = len(image), image.device
        drawn = chance(n, self.brightness_p, generator, device)[:, None, None, None]
        alpha = 1 + uniform(n, -self.contrast, self.contrast, generator, device)[:, None, None, None]
        beta = uniform(n, -self.brightness, self.brightness, generator, device)[:, None, None, None]
        u = (alpha * (image * self.std + self.mean) + beta).clamp(0, 1)
        return torch.where(drawn, (u - self.mean) / self.std, image)


def step_generator(device: torch.device, *keys: int) -> torch.Generator:
    """A generator on `device` seeded by integer keys (e.g. seed, epoch, step, rank): the same keys, the same draws."""
    seed = 0
    for key in keys:
        seed = (seed * 1_000_003 + int(key)) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(seed)
