"""Segmentation losses on logits: BCE (the original study's), soft Dice, and their sum; Tversky, focal, and Tversky
with every tumor component weighted alike."""

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from torch.nn import functional as F


class DiceLoss(nn.Module):
    """1 - soft Dice over all pixels of the batch (batch Dice: stable when slices have no tumor)."""

    def __init__(self, smooth: float = 1.0):
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = torch.sigmoid(logits.float())
        target = target.float()
        inter = (probs * target).sum()
        return 1 - (2 * inter + self.smooth) / (probs.sum() + target.sum() + self.smooth)


class DiceBCELoss(nn.Module):
    """dice_weight * DiceLoss + bce_weight * BCE: Dice fights the 0.3% foreground, BCE keeps gradients smooth."""

    def __init__(self, dice_weight: float = 1.0, bce_weight: float = 1.0, smooth: float = 1.0):
        super().__init__()
        self.dice, self.dice_weight, self.bce_weight = DiceLoss(smooth), dice_weight, bce_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return self.dice_weight * self.dice(logits, target) + self.bce_weight * bce


class TverskyLoss(nn.Module):
    """1 - Tversky index over the batch: alpha weighs false positives, beta false negatives
    (beta > alpha favours recall)."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0):
        super().__init__()
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """weight: per-pixel weights of the counts (shape of target); None: every pixel 1."""
        probs, target = torch.sigmoid(logits.float()), target.float()
        w = torch.ones_like(target) if weight is None else weight
        tp = (w * probs * target).sum()
        fp = (w * probs * (1 - target)).sum()
        fn = (w * (1 - probs) * target).sum()
        return 1 - (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)


class FocalDiceLoss(nn.Module):
    """focal_weight * focal BCE (Lin et al.: easy background pixels down-weighted) + dice_weight * DiceLoss."""

    def __init__(self, gamma: float = 2.0, alpha: float = 0.75, focal_weight: float = 1.0, dice_weight: float = 1.0,
                 smooth: float = 1.0):
        super().__init__()
        self.gamma, self.alpha = gamma, alpha
        self.focal_weight, self.dice_weight, self.dice = focal_weight, dice_weight, DiceLoss(smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = logits.float(), target.float()
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_true = torch.exp(-bce)  # probability given to the true class
        alpha = self.alpha * target + (1 - self.alpha) * (1 - target)
        focal = (alpha * (1 - p_true) ** self.gamma * bce).mean()
        return self.focal_weight * focal + self.dice_weight * self.dice(logits, target)


# 8-connected within each slice of an N x H x W stack, never across slices.
SLICE_8 = np.zeros((3, 3, 3), bool)
SLICE_8[1] = True


def component_labels(mask: torch.Tensor) -> torch.Tensor:
    """8-connected component labels of a N x 1 x H x W 0/1 mask: 0 on background, on each component one id unique
    in the batch (not consecutive). On the CPU scipy.ndimage.label; on a GPU propagated_labels, which stays there."""
    if mask.device.type == "cpu":
        labels, _ = ndimage.label(mask.detach().numpy()[:, 0] > 0.5, structure=SLICE_8)
        return torch.from_numpy(labels).long()[:, None]
    return propagated_labels(mask)


def propagated_labels(mask: torch.Tensor) -> torch.Tensor:
    """component_labels by label propagation on the mask's device (no copy to the CPU, a few reads of the device).

    Every foreground pixel starts with its own id (1 + its index in the slice) and takes its neighbours' largest
    (3x3 max-pool); a label is also the address of a pixel of the same component holding a label at least as large,
    so each round also jumps to it (pointer jumping: the rounds grow with the log of a component's length rather
    than with its length). Only the box around all the batch's tumors is computed.
    """
    n = len(mask)
    fg_full = mask > 0.5
    labels_full = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
    rows, cols = fg_full.any(dim=(0, 1, 3)).nonzero()[:, 0], fg_full.any(dim=(0, 1, 2)).nonzero()[:, 0]
    if not len(rows):
        return labels_full
    # Tumors cover ~0.3% of a slice: the box around them all is most often a small part of it.
    box = (slice(None), slice(None), slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    fg = fg_full[box]
    h, w = fg.shape[-2:]
    # Ids within a slice (< 2**24: exact in float32), made unique in the batch at the end.
    ids = torch.arange(1, h * w + 1, device=mask.device, dtype=torch.float32).view(1, 1, h, w)
    labels = torch.where(fg, ids, torch.zeros((), device=mask.device))
    for rounds in range(h * w):
        grown = torch.where(fg, F.max_pool2d(labels, 3, stride=1, padding=1), labels)
        flat = grown.view(n, h * w)
        jumped = torch.maximum(flat, flat.gather(1, (flat.long() - 1).clamp(min=0))).view(n, 1, h, w)
        grown = torch.where(fg, jumped, labels)
        # A check reads the device (a sync): every other round only.
        if rounds % 2 == 1 and torch.equal(grown, labels):
            break
        labels = grown
    offsets = torch.arange(n, device=mask.device).view(n, 1, 1, 1) * (h * w + 1)
    labels_full[box] = torch.where(fg, labels.long() + offsets, torch.zeros((), dtype=torch.long, device=mask.device))
    return labels_full


def component_weights(target: torch.Tensor) -> torch.Tensor:
    """Pixel weights (shape of target) that give every tumor component of the batch the same total weight.

    A pixel of a component of `area` pixels weighs F / (K * area) (F foreground pixels, K components in the batch):
    each component sums to F / K, the foreground still to F, background pixels weigh 1. One component: all 1.
    """
    labels = component_labels(target)
    areas = torch.bincount(labels.flatten())
    areas[0] = 0  # background
    k = (areas > 0).sum().clamp(min=1)
    per_pixel = areas[labels].float()
    fg = labels > 0
    return torch.where(fg, fg.sum() / (k * per_pixel.clamp(min=1)), torch.ones_like(per_pixel))


class ComponentTverskyLoss(TverskyLoss):
    """Tversky over the batch with each tumor component's pixels weighted by 1 / its area (component_weights), so a
    small tumor counts as much as a large one; the plain TverskyLoss when the batch holds one component."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            weight = component_weights(target.float())
        return super().forward(logits, target, weight)
