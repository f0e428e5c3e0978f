"""The figure store: the charts and fits of the performance pages, which need matplotlib or
scikit-learn (seconds to import and compute), kept in the database under a hash of exactly what
each is computed from. New data makes a new key, so a stored figure is never stale. A worker fills
the store for the unfiltered pages whenever their data changes (`charts.refresh_stored_figures`),
and a web process then serves those pages without importing either library; a figure not stored
yet (a filtered view, or a view before the worker got there) is computed once, by whoever asks first.
"""

import hashlib
import json
from datetime import timedelta

import numpy as np
from django.utils import timezone

from modelops.models import StoredFigure

# Figures computed longer ago than this are dropped at the next refresh (current ones are stored again).
KEPT_FOR = timedelta(days=30)


def stored(compute, *inputs, **options):
    """`compute(*inputs, **options)`, read from the store when it holds the result for exactly these
    inputs, else computed and stored. The result must be JSON (NaN allowed)."""
    key = fingerprint(compute, inputs, sorted(options.items()))
    value = StoredFigure.objects.filter(key=key).values_list("value", flat=True).first()
    if value is None:
        value = json.dumps(compute(*inputs, **options))
        StoredFigure.objects.bulk_create([StoredFigure(key=key, value=value)], ignore_conflicts=True)
    return json.loads(value)


def drop_old_figures() -> int:
    deleted, _ = StoredFigure.objects.filter(computed_at__lt=timezone.now() - KEPT_FOR).delete()
    return deleted


def fingerprint(*values) -> str:
    """SHA-256 of arrays (dtype, shape, bytes), functions (by name), sequences and plain values."""
    digest = hashlib.sha256()

    def add(value):
        if isinstance(value, np.ndarray):
            digest.update(f"array{value.dtype.str}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif callable(value):
            digest.update(f"function {value.__module__}.{value.__qualname__}".encode())
        elif isinstance(value, (list, tuple)):
            digest.update(f"{type(value).__name__}{len(value)}(".encode())
            for item in value:
                add(item)
            digest.update(b")")
        else:
            digest.update(repr(value).encode())

    add(values)
    return digest.hexdigest()
