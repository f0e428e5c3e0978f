"""The differential: class -> probability over the clinic's differential diagnoses, from the pooled
features the one backbone pass already has (no extra forward).

A checkpoint with a differential carries ``metadata["differential"]["classes"]`` and the linear head
``differential.weight`` (K, D) and ``differential.bias`` (K) in its state dict; older checkpoints
have none and give an empty differential.

P(mpox) shown in the differential is the calibrated flagging score (the one the threshold applies
to); the other classes share the rest in proportion to the head's softmax over them, so the
differential sums to 1 and never contradicts the flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WEIGHT_KEY = "differential.weight"
BIAS_KEY = "differential.bias"
MPOX = "mpox"


@dataclass(frozen=True)
class Differential:
    classes: tuple[str, ...]
    weight: np.ndarray  # (K, D) float32 on raw pooled features
    bias: np.ndarray  # (K,) float32

    @classmethod
    def from_checkpoint(cls, metadata: dict, state: dict) -> Differential | None:
        config = metadata.get("differential")
        if not config:
            return None
        missing = [key for key in (WEIGHT_KEY, BIAS_KEY) if key not in state]
        if missing:
            raise ValueError(f"the checkpoint's differential needs the {', '.join(missing)} state entry")
        classes = tuple(config["classes"])
        if MPOX not in classes or state[WEIGHT_KEY].shape[0] != len(classes):
            raise ValueError("the differential's classes must include mpox and match its weights")
        return cls(
            classes, np.asarray(state[WEIGHT_KEY], dtype=np.float32), np.asarray(state[BIAS_KEY], dtype=np.float32)
        )

    def probabilities(self, pooled: np.ndarray, mpox_probabilities) -> list[dict[str, float]]:
        """One ``{class: probability}`` per row of ``pooled``, with P(mpox) = the given calibrated
        flagging score of that row."""
        logits = np.asarray(pooled, dtype=np.float32) @ self.weight.T + self.bias
        m = self.classes.index(MPOX)
        others = np.exp(np.delete(logits, m, axis=1) - logits.max(axis=1, keepdims=True))
        others = others / np.maximum(others.sum(axis=1, keepdims=True), 1e-12)
        names = [c for c in self.classes if c != MPOX]
        result = []
        for p, row in zip(mpox_probabilities, others.tolist()):
            p = float(p)
            result.append({MPOX: p, **{name: (1 - p) * share for name, share in zip(names, row)}})
        return result
