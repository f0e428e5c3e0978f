"""Fine-tuning the backbone's last stage on the sources (the ``finetune_*`` methods of
``python -m ml sources``).

The frozen trunk's outputs are cached (``load_features(..., trunk=True)``); each fold copies the
ImageNet last stage (``ArchSpec.tail_start`` on) and trains it with a new mpox-vs-rest logit on the
fold's training photos. Batch-norm statistics stay frozen (small, source-skewed batches would move
them). Every setting is fixed before any run; nothing is tuned on the held-out checks."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ..architectures import get_arch

TAIL_LR = 1e-4
HEAD_LR = 1e-3
WEIGHT_DECAY = 1e-4
BATCH = 32


class FineTunedTail:
    """The last stage and a one-logit head, trained on trunk outputs of the rows given."""

    def __init__(self, trunk: dict, rows: np.ndarray, targets: np.ndarray, epochs: int, seed: int):
        from .sources import backbone

        torch.manual_seed(seed)
        net = backbone(trunk["arch"])
        _, tail = get_arch(trunk["arch"]).split_features(net)
        self.net, self.tail = net, copy.deepcopy(tail).eval()
        self.fc = torch.nn.Linear(net.head.fc.in_features, 1)
        torch.nn.init.zeros_(self.fc.weight)
        torch.nn.init.zeros_(self.fc.bias)
        x = trunk["as_is"][rows]
        y = torch.as_tensor(targets[rows], dtype=torch.float32)
        positives = float(y.sum())
        pos_weight = torch.tensor((len(y) - positives) / max(positives, 1.0))
        optimiser = torch.optim.AdamW(
            [
                {"params": list(self.tail.parameters()), "lr": TAIL_LR},
                {"params": list(self.fc.parameters()), "lr": HEAD_LR},
            ],
            weight_decay=WEIGHT_DECAY,
        )
        generator = torch.Generator().manual_seed(seed)
        with torch.enable_grad():
            for _ in range(epochs):
                for batch in torch.randperm(len(y), generator=generator).split(BATCH):
                    logits = self._logits(x[batch])
                    loss = F.binary_cross_entropy_with_logits(logits, y[batch], pos_weight=pos_weight)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().contiguous(memory_format=torch.channels_last)
        return self.fc(self.net.pooled(self.tail(x)))[:, 0]

    def binary_logit(self, x: torch.Tensor, batch: int = 256) -> np.ndarray:
        with torch.inference_mode():
            return torch.cat([self._logits(part) for part in x.split(batch)]).numpy()
