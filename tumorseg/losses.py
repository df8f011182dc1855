"""Segmentation losses on logits: BCE (the original study's), soft Dice, and their sum."""

import torch
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
    """1 - Tversky index over the batch: alpha weighs false positives, beta false negatives (beta > alpha favours recall)."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0):
        super().__init__()
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, target = torch.sigmoid(logits.float()), target.float()
        tp = (probs * target).sum()
        fp = (probs * (1 - target)).sum()
        fn = ((1 - probs) * target).sum()
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
