"""Running statistics: observation normalisation and MAPPO's value normalisation (ValueNorm)."""
from __future__ import annotations

import torch
from torch import nn


class RunningMeanStd(nn.Module):
    """Running mean/variance of feature vectors (parallel-variance update, Chan et al. 1979).

    Used for ``network_settings.normalize`` (ML-Agents' observation normaliser). Lives in the actor
    as buffers so it is checkpointed and baked into the ONNX export.

    Args:
        shape: feature shape, e.g. ``(obs_size,)``.
        clip: normalised values are clipped to ``[-clip, clip]`` (ML-Agents uses 5).
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 5.0, eps: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(eps))
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``x`` float32 ``[N, *shape]`` into the statistics."""
        x = x.reshape(-1, *self.mean.shape).float()
        if x.shape[0] == 0:
            return
        b_mean, b_var, b_n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, tot = b_mean - self.mean, self.count + b_n
        self.mean += delta * b_n / tot
        self.var.copy_((self.var * self.count + b_var * b_n + delta.pow(2) * self.count * b_n / tot) / tot)
        self.count.copy_(tot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / sqrt(var + 1e-8)`` clipped to ``[-clip, clip]``; same shape as ``x``."""
        return torch.clamp((x - self.mean) / torch.sqrt(self.var + 1e-8), -self.clip, self.clip)


class ValueNorm(nn.Module):
    """MAPPO's value normalisation: debiased exponential running mean/var of the returns.

    The critic predicts normalised values; targets are normalised with these statistics and
    predictions denormalised for GAE. Source: ``onpolicy/utils/valuenorm.py`` in
    marlbenchmark/on-policy (Yu et al. 2022, §"Value normalization"), ``beta = 0.99999``.
    """

    def __init__(self, beta: float = 0.99999, eps: float = 1e-5):
        super().__init__()
        self.beta, self.eps = beta, eps
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_mean_sq", torch.zeros(()))
        self.register_buffer("debiasing_term", torch.zeros(()))

    def _mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.debiasing_term.clamp(min=self.eps)
        mean, mean_sq = self.running_mean / d, self.running_mean_sq / d
        return mean, (mean_sq - mean.pow(2)).clamp(min=1e-2)

    @torch.no_grad()
    def update(self, returns: torch.Tensor) -> None:
        """Fold a batch of returns (any shape, float32) into the statistics."""
        x = returns.reshape(-1).float()
        if x.numel() == 0:
            return
        self.running_mean.mul_(self.beta).add_(x.mean() * (1 - self.beta))
        self.running_mean_sq.mul_(self.beta).add_(x.pow(2).mean() * (1 - self.beta))
        self.debiasing_term.mul_(self.beta).add_(1.0 - self.beta)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._mean_var()
        return (x - mean) / torch.sqrt(var)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._mean_var()
        return x * torch.sqrt(var) + mean
