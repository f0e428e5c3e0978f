"""History and image together: a small, interpretable logistic regression on the image score and
the patient's answers (plain numpy / scikit-learn; the portal builds the feature rows)."""

from __future__ import annotations

import numpy as np

from .metrics import roc_auc

SCORE_EPSILON = 1e-4


def image_logit(scores) -> np.ndarray:
    """The image model's probability on the log-odds scale, so its coefficient reads like the others'."""
    p = np.clip(np.asarray(scores, dtype=float), SCORE_EPSILON, 1 - SCORE_EPSILON)
    return np.log(p / (1 - p))


def fit_history_model(features, labels, names: list[str], folds: int = 5, seed: int = 0) -> dict:
    """Fit L2-regularised logistic regression on all rows (coefficients, odds ratios) and report
    its out-of-fold AUC from stratified ``folds``-fold cross-validation, so it is compared with the
    image score alone on cases it was not fitted to."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    features, labels = np.asarray(features, dtype=float), np.asarray(labels).astype(int)
    fewest = int(min(labels.sum(), len(labels) - labels.sum()))
    if fewest < 2:
        raise ValueError("need at least two cases of each outcome")
    model = LogisticRegression(C=1.0, max_iter=1000)
    splitter = StratifiedKFold(n_splits=min(folds, fewest), shuffle=True, random_state=seed)
    oof = cross_val_predict(model, features, labels, cv=splitter, method="predict_proba")[:, 1]
    model.fit(features, labels)
    coefficients = model.coef_[0]
    return {
        "n": int(len(labels)),
        "positives": int(labels.sum()),
        "folds": splitter.get_n_splits(),
        "intercept": float(model.intercept_[0]),
        "coefficients": [
            {"feature": name, "coefficient": float(c), "odds_ratio": float(np.exp(c))}
            for name, c in zip(names, coefficients)
        ],
        "oof_auc": roc_auc(labels, oof),
        "oof_probabilities": oof.tolist(),
    }


def combined_probability(intercept: float, coefficients, features) -> float:
    """The fitted model's probability for one feature row (features in coefficient order)."""
    z = float(intercept) + float(np.dot(np.asarray(coefficients, dtype=float), np.asarray(features, dtype=float)))
    return float(1 / (1 + np.exp(-z)))


def threshold_flagging(labels, probabilities, positives_to_flag: int) -> float:
    """The highest threshold at which `probabilities` flag at least `positives_to_flag` of the
    positive rows (at least one): as sensitive as the score it is to replace, with the best
    specificity that allows."""
    labels = np.asarray(labels, dtype=bool)
    positives = np.sort(np.asarray(probabilities, dtype=float)[labels])[::-1]
    if len(positives) == 0:
        raise ValueError("need at least one positive row")
    return float(positives[min(max(positives_to_flag, 1), len(positives)) - 1])
