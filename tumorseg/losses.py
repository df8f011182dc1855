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
