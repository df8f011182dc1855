"""Several nets of the same shape as one: their logits averaged."""

import torch
from torch import nn


class LogitMean(nn.Module):
    """Mean of the members' logits (members: nets with the same input and output)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)
