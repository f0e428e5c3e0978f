"""The research bench: training, studies, evaluation commands, data scanning and synthetic scenes.

The worker never imports this package (an import-linter contract holds it); ``python -m ml`` runs
its command line (:mod:`ml.research.cli`).
"""
