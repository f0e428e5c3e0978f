"""Performance plots drawn server-side by `ml.plots`'s helpers (matplotlib / scikit-learn
displays), returned as PNG data URIs for the staff pages: no chart files are stored or served."""
import base64
import io


def _png(draw, *args, **kwargs) -> str:
    buffer = io.BytesIO()
    draw(*args, buffer, **kwargs)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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
