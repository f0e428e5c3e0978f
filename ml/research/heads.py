"""The linear head the source study, the case rule and the training command fit on frozen
backbone features (plain torch)."""

from __future__ import annotations

import numpy as np
import torch

WEIGHT_DECAY = 3e-3  # L2 on the standardised features' weights; fixed a priori, never tuned here


class SoftmaxHead:
    """Multinomial logistic regression on standardised features (class-balanced, L2), full-batch
    L-BFGS in torch; ``raw_weights`` folds the standardisation back into one linear layer."""

    def __init__(self, n_classes: int, weight_decay: float = WEIGHT_DECAY):
        self.n_classes, self.weight_decay = n_classes, weight_decay

    def fit(self, x: np.ndarray, y: np.ndarray, nuisance: np.ndarray | None = None, dims: int = 0) -> SoftmaxHead:
        """With ``nuisance`` (rows of feature differences that should not matter: the same photo in
        two looks), the ``dims`` main directions of those differences are projected out of the
        features before the fit; the projection folds into ``raw_weights``."""
        x = torch.as_tensor(x, dtype=torch.float32)
        y = torch.as_tensor(y, dtype=torch.long)
        self.projection = None
        if nuisance is not None and dims:
            d = torch.as_tensor(nuisance, dtype=torch.float32)
            directions = torch.linalg.svd(d - d.mean(0), full_matrices=False).Vh[:dims]
            self.projection = torch.eye(x.shape[1]) - directions.T @ directions
            x = x @ self.projection
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-6
        z = (x - self.mean) / self.scale
        counts = torch.bincount(y, minlength=self.n_classes).float()
        class_weight = torch.where(counts > 0, len(y) / (self.n_classes * counts.clamp(min=1)), 0.0)
        self.weight = torch.zeros(self.n_classes, x.shape[1], requires_grad=True)
        self.bias = torch.zeros(self.n_classes, requires_grad=True)
        optimiser = torch.optim.LBFGS(
            [self.weight, self.bias], lr=1, max_iter=200, history_size=20, line_search_fn="strong_wolfe"
        )

        def closure():
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(z @ self.weight.T + self.bias, y, weight=class_weight)
            loss = loss + self.weight_decay * (self.weight**2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
        self.weight, self.bias = self.weight.detach(), self.bias.detach()
        return self

    def raw_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.weight / self.scale
        bias = self.bias - weight @ self.mean
        return (weight if self.projection is None else weight @ self.projection), bias

    def logits(self, x: np.ndarray) -> np.ndarray:
        weight, bias = self.raw_weights()
        return (torch.as_tensor(x, dtype=torch.float32) @ weight.T + bias).numpy()

    def binary_logit(self, x: np.ndarray) -> np.ndarray:
        """Class 1 against class 0 (a two-class head)."""
        logits = self.logits(x)
        return logits[:, 1] - logits[:, 0]
