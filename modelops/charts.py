"""Performance plots drawn server-side by `ml.plots`'s helpers (matplotlib / scikit-learn
displays), returned as PNG data URIs for the staff pages: no chart files are served.

Each chart is kept in the figure store (`modelops.figures`) under a hash of exactly what it is
drawn from (scores, labels, threshold, title), and `refresh_stored_figures` (a worker's task, run
when the data changes) draws the unfiltered pages' charts ahead of their first view."""

import base64
import io
import textwrap

from modelops import performance
from modelops.figures import drop_old_figures, stored
from modelops.selectors import model_versions_to_measure
from registry.versions import active_model_version, challenger_model_version, history_model_to_measure

# Characters per title line that fit the narrowest chart (5 in at 9 pt); longer titles wrap.
TITLE_WIDTH = 56


def performance_charts(model_version, report) -> dict | None:
    """The performance page's ROC, reliability and score-distribution charts for one version's
    `performance.model_performance` report; None below the minimum number of cases."""
    if not report.figures["enough"]:
        return None
    labels, scores = report.labels, report.scores
    title = f"{len(labels)} lab-confirmed cases"  # the section's heading names the version
    return {
        "roc": roc_chart([(model_version.version, labels, scores)], title=title),
        "calibration": calibration_chart(
            labels, scores, n_bins=performance.calibration_bin_count(len(labels)), title=title
        ),
        "distribution": score_distribution_chart(
            labels, scores, performance.flag_threshold(model_version), title=title
        ),
    }


def paired_roc_chart(result) -> str | None:
    """Both ROC curves of a paired comparison (`performance.paired_comparison`); None without both lab results."""
    figures = result.figures
    if not (result.labels.any() and not result.labels.all()):
        return None
    return roc_chart(
        [
            (figures["active"], result.labels, result.scores),
            (figures["challenger"], result.labels, figures["challenger_scores"]),
        ],
        title=f"Same {figures['paired_cases']} lab-confirmed cases",
    )


def refresh_stored_figures() -> None:
    """Draw and fit what the performance and comparison pages show without filters into the figure
    store (what is already there is read, not redrawn), and drop figures kept past their time."""
    drop_old_figures()
    for model_version in model_versions_to_measure():
        performance_charts(model_version, performance.model_performance(model_version))
    active, challenger, history_model = active_model_version(), challenger_model_version(), history_model_to_measure()
    if active:
        performance.history_model(active)
    if active and challenger:
        paired_roc_chart(performance.compare_models(active, challenger))
    if history_model:
        paired_roc_chart(performance.compare_history_model(history_model))


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


def _png(draw, *args, title, **options) -> str:
    return stored(_draw, draw, *args, title=textwrap.fill(title, TITLE_WIDTH), **options)


def _draw(draw, *args, **kwargs) -> str:
    buffer = io.BytesIO()
    draw(*args, buffer, **kwargs)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
