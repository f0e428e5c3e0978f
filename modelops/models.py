"""Model operations' one table, the figure store (`modelops.figures`); the registry's records are in
`registry.models`."""

from django.db import models


class StoredFigure(models.Model):
    """A chart or a fit that the performance pages show, stored as JSON under a hash of exactly what
    it was computed from, so any web process serves what one process (usually a worker) computed."""

    key = models.CharField(max_length=64, primary_key=True)
    value = models.TextField()
    computed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self):
        return f"{self.key[:12]}… ({self.computed_at:%Y-%m-%d %H:%M})"
