"""Performance plots drawn server-side by `ml.plots`'s helpers (matplotlib / scikit-learn
displays), returned as PNG data URIs for the staff pages: no chart files are stored or served.

Drawing is most of a performance page's time, so each chart is kept in the cache under a hash of
exactly what it is drawn from (scores, labels, threshold, title): new data makes a new key, so a
cached chart is never stale, and an unchanged history is drawn once per CHART_CACHE_SECONDS."""

import base64
import hashlib
import io
import textwrap

import numpy as np
from django.core.cache import cache

CHART_CACHE_SECONDS = 24 * 3600
# Characters per title line that fit the narrowest chart (5 in at 9 pt); longer titles wrap.
TITLE_WIDTH = 56


def _png(draw, *args, **kwargs) -> str:
    kwargs["title"] = textwrap.fill(kwargs["title"], TITLE_WIDTH)
    key = "chart:" + _fingerprint(draw.__module__, draw.__name__, args, sorted(kwargs.items()))
    return cache.get_or_set(key, lambda: _draw(draw, *args, **kwargs), CHART_CACHE_SECONDS)


def _draw(draw, *args, **kwargs) -> str:
    buffer = io.BytesIO()
    draw(*args, buffer, **kwargs)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _fingerprint(*values) -> str:
    digest = hashlib.sha256()

    def add(value):
        if isinstance(value, np.ndarray):
            digest.update(f"array{value.dtype.str}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, (list, tuple)):
            digest.update(f"{type(value).__name__}{len(value)}(".encode())
            for item in value:
                add(item)
            digest.update(b")")
        else:
            digest.update(repr(value).encode())

    add(values)
    return digest.hexdigest()


def roc_chart(curves, title) -> str:
    """`curves`: (name, labels, scores) per curve."""
    from ml.plots import plot_roc

    return _png(plot_roc, curves, title=title)


def calibration_chart(labels, scores, n_bins, title) -> str:
    from ml.plots import plot_calibration

    return _png(plot_calibration, labels, scores, title=title, n_bins=n_bins)


def score_distribution_chart(labels, scores, threshold, title) -> str:
    from ml.plots import plot_score_distribution

    groups = [("mpox PCR positive", scores[labels]), ("mpox PCR negative", scores[~labels])]
    return _png(plot_score_distribution, groups, threshold, title=title)
