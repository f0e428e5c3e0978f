"""The model registry: which classifier versions are installed, which one is active and which runs in
shadow as the challenger, the history + image models, and the per-process cache of loaded models.
Below the clinical pipeline (the worker asks it for the active model); knows no clinical record."""
