"""The model study behind the shipped checkpoint (issue 17): which classifier generalises, its
calibration, operating point and assessability rule, all from patient-grouped cross-validation on
the training data, and the final checkpoint.

Everything runs on backbone features cached once (fp16): the frozen ImageNet EfficientNet-Lite0's
pooled features of every image's plain view, standard and strong augmentations, test-time views (the crop turned by 180 degrees),
and of *shifted* copies of every image that imitate photos from another source (never used for
training or for choosing anything; each is scored only by the fold model that never saw its
patient):

- ``web``: colour cast and gamma, downscaled to 35-60 %, JPEG quality 15-40, scaled back up;
- ``phone``: perspective tilt, defocus blur, sensor noise, exposure, vignetting, JPEG 60-85;
- ``scene``: placed in a larger synthetic scene (``ml.research.scenes``), JPEG 70-90, cropped again by the
  box of the backbone's activation energy at 224 px (the first automatic ROI; the portal's
  ``AUTO_ROI`` adds skin and border weighting and a finer pass, measured by ``ml roi-study``).

Two more copies must come out *not assessable* (they measure the assessability rule only):
``heavy_blur`` (Gaussian sigma 4 px at 224 px) and ``dark`` (exposure x 0.08).

The lesion-present check of the assessability rule learns lesion crops against crops of
*training* negatives: lesion-free photos rendered by ``ml.research.negatives`` with ``LESION_CHECK_SEED``
(the negatives set of the model card, seed 1, is never used here), cropped as the portal crops them
(the automatic ROI, and boxes a tap would give). It is reported out of fold for the lesion crops
and with each render category held out in turn.

Methods compared on the same folds: logistic regression on frozen features (plain views; plus
standard augmentation; plus strong photometric + scale augmentation), each with test-time
augmentation, an ensemble of inner-fold models, and the fine-tuned network of ``ml.research.training``
(head + last block). AUCs come with 95 % patient-level bootstrap CIs, and differences against the
plain logistic head with paired bootstrap CIs.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision.transforms import v2 as T

from ..architectures import LesionNet, get_arch
from ..assessment import (
    BANK_KEY,
    LESION_KEY,
    Assessor,
    fit_quality_thresholds,
    knn_distance,
    normalise,
    quality_measures,
)
from ..boxes import box_from_tap
from ..checkpoint import make_metadata, save_checkpoint
from ..heads import energy
from ..metrics import binary_metrics, roc_auc, threshold_for_sensitivity, wilson_ci
from ..preprocess import crop_resize, load_image, to_batch
from ..roi import LOCATING_PASS_416, box_from_cam, energy_maps
from .data import discover, grouped_folds
from .negatives import RENDERERS, render
from .training import TrainConfig, augmentation, build_initial_network, cross_validate

ARCH = "efficientnet_lite0"
SIZE = 224
SHIFTS = ("web", "phone", "scene")
MUST_REJECT = ("heavy_blur", "dark")
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
KNN_K = 5
ASSESSABLE_QUANTILE = 0.98  # OOF lesion crops within the OOD distance limit
# The lesion-present check: a logistic unit (this C, balanced classes) on the pooled features;
# its limit lets this share of the out-of-fold lesion crops through (fixed before any result).
LESION_CHECK_C = 0.01
LESION_CHECK_QUANTILE = 0.99
LESION_CHECK_QUANTILES_REPORTED = (0.95, 0.98, 0.99, 0.995)
LESION_CHECK_SEED = 11  # the training renders; the model card's negatives use seed 1
LESION_CHECK_PER_CATEGORY = 24
TAP_CROPS_PER_RENDER = 2  # besides the automatic-ROI crop: boxes a tap would give


# ---------------------------------------------------------------- views and shifted copies


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _colour_cast(array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gains = rng.uniform(0.85, 1.15, size=3)
    gamma = rng.uniform(0.75, 1.33)
    return np.clip(255 * ((array / 255.0) ** gamma) * gains, 0, 255)


def web_copy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    array = _colour_cast(np.asarray(image, dtype=np.float32), rng)
    small = Image.fromarray(array.astype(np.uint8))
    scale = rng.uniform(0.35, 0.6)
    small = small.resize(
        (max(16, int(image.width * scale)), max(16, int(image.height * scale))), Image.Resampling.BILINEAR
    )
    return _jpeg(small, rng.integers(15, 41)).resize(image.size, Image.Resampling.BILINEAR)


def phone_copy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    array = np.asarray(image, dtype=np.float32)
    h, w = array.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = (corners + rng.uniform(-0.08, 0.08, size=(4, 2)) * [w, h]).astype(np.float32)
    array = cv2.warpPerspective(
        array, cv2.getPerspectiveTransform(corners, moved), (w, h), borderMode=cv2.BORDER_REFLECT
    )
    array = cv2.GaussianBlur(array, (0, 0), rng.uniform(0.6, 1.2))
    yy, xx = np.mgrid[0:h, 0:w]
    radius = np.hypot((xx - w / 2) / w, (yy - h / 2) / h)
    array = array * rng.uniform(0.7, 1.3) * (1 - rng.uniform(0.1, 0.35) * radius[..., None] ** 2)
    array = array + rng.normal(0, rng.uniform(3, 8), size=array.shape)
    return _jpeg(Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)), rng.integers(60, 86))


def scene_copy(image: Image.Image, rng: np.random.Generator, net: LesionNet) -> Image.Image:
    from .scenes import make_scene

    scene, _ = make_scene(image, rng)
    scene = _jpeg(scene, rng.integers(70, 91))
    spec = get_arch(ARCH)
    with torch.inference_mode():
        activated = net.head.act(net.features(to_batch([crop_resize(scene, None, SIZE)], spec.mean, spec.std)))
    located = energy_maps(energy(activated.numpy()), (SIZE, SIZE))[0]
    return crop_resize(scene, box_from_cam(located, scene.size), SIZE)


def heavy_blur_copy(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(4))


def dark_copy(image: Image.Image) -> Image.Image:
    return Image.fromarray((np.asarray(image, dtype=np.float32) * 0.08).astype(np.uint8))


def tta_views(image: Image.Image) -> list[Image.Image]:
    """Test-time augmentation: the crop and the crop turned by 180 degrees (both flips)."""
    return [image, image.transpose(Image.Transpose.ROTATE_180)]


class _JpegPil:
    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, image: Image.Image) -> Image.Image:
        return _jpeg(image, int(torch.randint(self.low, self.high + 1, (1,))))


def strong_augmentation(size: int) -> T.Compose:
    """Standard augmentation plus wider scale range, colour, blur and recompression."""
    return T.Compose(
        [
            T.RandomRotation(30),
            T.RandomResizedCrop(size, scale=(0.3, 1.0), ratio=(0.75, 1.33), antialias=True),
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05),
            T.RandomApply([T.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.4),
            T.RandomApply([_JpegPil(20, 90)], p=0.5),
        ]
    )


# ---------------------------------------------------------------- feature cache


def backbone() -> LesionNet:
    net = build_initial_network(TrainConfig(arch=ARCH, init="imagenet"))
    return net.eval().to(memory_format=torch.channels_last)


def pooled_features(net: LesionNet, crops: list[Image.Image], batch: int = 32) -> torch.Tensor:
    spec = get_arch(ARCH)
    out = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch):
            x = to_batch(crops[start : start + batch], spec.mean, spec.std)
            out.append(net.pooled(net.features(x)))
    return torch.cat(out)


def build_cache(samples, images: list[Image.Image], net: LesionNet, views: int, seed: int, log) -> dict:
    """Features (fp16) of every view kind and the shifted crops themselves."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    standard, strong = augmentation(SIZE), strong_augmentation(SIZE)
    feats = {"plain_tta": [], "standard": [], "strong": []}
    shifted = {kind: [] for kind in SHIFTS + MUST_REJECT}
    start = time.perf_counter()
    for i, image in enumerate(images):
        feats["plain_tta"].append(pooled_features(net, tta_views(image)))
        feats["standard"].append(pooled_features(net, [standard(image) for _ in range(views)]))
        feats["strong"].append(pooled_features(net, [strong(image) for _ in range(views)]))
        copies = {
            "web": web_copy(image, rng),
            "phone": phone_copy(image, rng),
            "scene": scene_copy(image, rng, net),
            "heavy_blur": heavy_blur_copy(image),
            "dark": dark_copy(image),
        }
        for kind, copy in copies.items():
            views_of_copy = tta_views(copy) if kind in SHIFTS else [copy]
            shifted[kind].append((copy, pooled_features(net, views_of_copy)))
        if (i + 1) % 25 == 0 or i + 1 == len(images):
            log(f"  features {i + 1}/{len(images)} ({time.perf_counter() - start:.0f} s)")
    cache = {name: torch.stack(rows).half() for name, rows in feats.items()}
    for kind, rows in shifted.items():
        cache[f"shift_{kind}"] = torch.stack([f for _, f in rows]).half()
    cache["shift_images"] = {kind: [c for c, _ in shifted[kind]] for kind in SHIFTS}
    return cache


def rendered_negative_features(net: LesionNet, cache_dir: Path, log) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Pooled features of the training negatives, cropped as the portal crops a photo: rows,
    their render category, and whether the row is the automatic-ROI crop (else a tap's box)."""
    from ..torch_runtime import torch_model

    key = hashlib.sha256(
        json.dumps(
            [LESION_CHECK_SEED, LESION_CHECK_PER_CATEGORY, TAP_CROPS_PER_RENDER, str(LOCATING_PASS_416)]
        ).encode()
    ).hexdigest()[:16]
    path = cache_dir / f"lesion-negatives-{key}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=False)
        return saved["features"], saved["categories"], saved["auto"]
    locator = torch_model(
        net, make_metadata(arch=ARCH, input_size=SIZE, threshold=0.5, version="backbone", init="imagenet")
    )
    rng = np.random.default_rng(LESION_CHECK_SEED)
    crops, categories, auto = [], [], []
    for category in RENDERERS:
        for i in range(LESION_CHECK_PER_CATEGORY):
            photo = render(category, rng, i)
            boxes = locator.locating_pass_rois([photo], LOCATING_PASS_416)
            for _ in range(TAP_CROPS_PER_RENDER):
                tap = (int(rng.uniform(0.1, 0.9) * photo.width), int(rng.uniform(0.1, 0.9) * photo.height))
                boxes.append(box_from_tap(*tap, photo.size, rng.uniform(0.2, 0.5)))
            crops += [crop_resize(photo, box, SIZE) for box in boxes]
            categories += [category] * len(boxes)
            auto += [True] + [False] * (len(boxes) - 1)
        log(f"  lesion check negatives: {category}")
    features = pooled_features(net, crops).half()
    categories, auto = np.array(categories), np.array(auto)
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"features": features, "categories": categories, "auto": auto}, path)
    return features, categories, auto


def quality_of_copies(cache: dict, images: list[Image.Image]) -> dict[str, list[dict]]:
    """Image-quality measures of the plain crops and of every copy (cheap: no network)."""
    quality = {"clean": [quality_measures(np.asarray(im)) for im in images]}
    for kind in SHIFTS:
        quality[kind] = [quality_measures(np.asarray(c)) for c in cache["shift_images"][kind]]
    quality["heavy_blur"] = [quality_measures(np.asarray(heavy_blur_copy(im))) for im in images]
    quality["dark"] = [quality_measures(np.asarray(dark_copy(im))) for im in images]
    return quality


# ---------------------------------------------------------------- logistic heads


class LinearHead:
    """Standardised features -> L2 logistic regression (balanced classes); ``weights()`` folds the
    scaling back so the head is one ``nn.Linear`` on raw pooled features."""

    def __init__(self, c: float):
        from sklearn.linear_model import LogisticRegression

        self.c = c
        self.model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)

    def fit(self, x: np.ndarray, y: np.ndarray) -> LinearHead:
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-6
        self.model.fit((x - self.mean) / self.scale, y)
        return self

    def logit(self, x: np.ndarray) -> np.ndarray:
        return self.model.decision_function((x - self.mean) / self.scale)

    def weights(self) -> tuple[np.ndarray, float]:
        w = self.model.coef_[0] / self.scale
        return w, float(self.model.intercept_[0] - (w * self.mean).sum())


def _rows(cache: dict, idx: np.ndarray, labels: np.ndarray, groups: np.ndarray, aug: str | None):
    """Training rows: plain views, plus every ``aug`` view of the same images."""
    plain = cache["plain_tta"][idx, 0].float().numpy()
    if aug is None:
        return plain, labels[idx], groups[idx]
    views = cache[aug][idx].float().numpy()
    n_views = views.shape[1]
    x = np.concatenate([plain, views.reshape(-1, views.shape[-1])])
    return (
        x,
        np.concatenate([labels[idx], np.repeat(labels[idx], n_views)]),
        np.concatenate([groups[idx], np.repeat(groups[idx], n_views)]),
    )


def choose_c(cache, idx, labels, groups, aug, seed) -> float:
    """C with the best mean inner-fold AUC (plain views of held-out patients), grouped 3-fold."""
    inner = grouped_folds(labels[idx], groups[idx], 3, seed)
    best = (-1.0, C_GRID[0])
    for c in C_GRID:
        aucs = []
        for fit_i, val_i in inner:
            x, y, _ = _rows(cache, idx[fit_i], labels, groups, aug)
            head = LinearHead(c).fit(x, y)
            aucs.append(roc_auc(labels[idx[val_i]], head.logit(cache["plain_tta"][idx[val_i], 0].float().numpy())))
        best = max(best, (float(np.mean(aucs)), c))
    return best[1]


def _score(heads: list[LinearHead], features: torch.Tensor, tta: bool) -> np.ndarray:
    """Mean logit over heads (ensemble) and, with ``tta``, over the TTA views; features (n, views, D)."""
    views = features.float().numpy() if tta else features[:, :1].float().numpy()
    return np.mean([[h.logit(views[:, v]) for v in range(views.shape[1])] for h in heads], axis=(0, 1))


# ---------------------------------------------------------------- statistics


def bootstrap_auc(labels, scores_by_name: dict, groups, baseline: str | None, n_boot: int, seed: int) -> dict:
    """AUC, its 95 % patient-level bootstrap CI, and the paired CI of the difference to ``baseline``."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    rng = np.random.default_rng(seed)
    draws = [np.concatenate([members[g] for g in rng.integers(0, len(unique), len(unique))]) for _ in range(n_boot)]
    out = {}
    for name, scores in scores_by_name.items():
        boot = np.array([roc_auc(labels[d], scores[d]) for d in draws])
        entry = {"auc": roc_auc(labels, scores), "ci95": _ci(boot)}
        if baseline is not None and name != baseline:
            base = np.array([roc_auc(labels[d], scores_by_name[baseline][d]) for d in draws])
            entry["diff_vs_baseline"] = entry["auc"] - roc_auc(labels, scores_by_name[baseline])
            entry["diff_ci95"] = _ci(boot - base)
        out[name] = entry
    return out


def _ci(values) -> list[float]:
    return [float(np.nanquantile(values, 0.025)), float(np.nanquantile(values, 0.975))]


def bootstrap_rates(labels, scores, threshold, groups, n_boot, seed) -> dict:
    """Sensitivity and specificity at ``threshold`` with patient-level bootstrap CIs."""
    labels, scores, groups = np.asarray(labels), np.asarray(scores), np.asarray(groups)
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    rng = np.random.default_rng(seed)
    sens, spec = [], []
    for _ in range(n_boot):
        d = np.concatenate([members[g] for g in rng.integers(0, len(unique), len(unique))])
        m = binary_metrics(labels[d], scores[d], threshold)
        sens.append(m["sensitivity"])
        spec.append(m["specificity"])
    point = binary_metrics(labels, scores, threshold)
    return {
        "sensitivity": point["sensitivity"],
        "sensitivity_ci95": _ci(sens),
        "specificity": point["specificity"],
        "specificity_ci95": _ci(spec),
    }


def platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) with P = sigmoid(a * logit + b), fitted by (nearly unpenalised) logistic regression."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4, max_iter=1000).fit(logits.reshape(-1, 1), labels)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def calibration_summary(probabilities: np.ndarray, labels: np.ndarray, bins: int = 5) -> dict:
    """Brier score, expected calibration error and the reliability table (equal-count bins)."""
    order = np.argsort(probabilities)
    table, ece = [], 0.0
    for chunk in np.array_split(order, bins):
        mean_p, rate = float(probabilities[chunk].mean()), float(labels[chunk].mean())
        table.append({"mean_predicted": mean_p, "observed_rate": rate, "n": int(len(chunk))})
        ece += len(chunk) / len(labels) * abs(mean_p - rate)
    return {"brier": float(np.mean((probabilities - labels) ** 2)), "ece": float(ece), "bins": table}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _logit(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p) - np.log(1 - p)


# ---------------------------------------------------------------- the study

METHODS = {  # name -> (training augmentation, test-time augmentation, ensemble of inner-fold models)
    "logistic": (None, False, False),
    "logistic+tta": (None, True, False),
    "logistic+aug": ("standard", False, False),
    "logistic+aug+tta": ("standard", True, False),
    "logistic+strong_aug": ("strong", False, False),
    "logistic+strong_aug+tta": ("strong", True, False),
    "logistic+aug+ensemble": ("standard", False, True),
}


def run_study(
    data: Path,
    out: Path,
    ship: str,
    checkpoint: Path | None,
    cache_dir: Path,
    folds: int,
    seed: int,
    views: int,
    target_sensitivity: float,
    n_boot: int,
    finetune: bool,
    log,
    lesion_check: bool = False,
) -> dict:
    """The study; ``lesion_check`` puts the lesion-present check into the rule (and the checkpoint):
    off by default, because it is always reported but was not shipped (model card)."""
    samples = discover(data)
    labels = np.array([s.label for s in samples])
    groups = np.array([s.patient_id for s in samples])
    images = [crop_resize(load_image(s.path), s.box, SIZE) for s in samples]
    log(f"{data}: {len(samples)} images, {int(labels.sum())} mpox, {len(set(groups))} patients")
    net = backbone()
    key = hashlib.sha256(json.dumps([str(s.path) for s in samples] + [views, seed]).encode()).hexdigest()[:16]
    cache_path = cache_dir / f"study-{key}.pt"
    if cache_path.is_file():
        cache = torch.load(cache_path, weights_only=False)
        log(f"loaded feature cache {cache_path}")
    else:
        cache = build_cache(samples, images, net, views, seed, log)
        cache_dir.mkdir(parents=True, exist_ok=True)
        torch.save(cache, cache_path)
    fold_list = grouped_folds(labels, groups, folds, seed)
    n = len(samples)
    kinds = SHIFTS + MUST_REJECT
    oof: dict[str, dict[str, np.ndarray]] = {
        name: {"clean": np.zeros(n), **{k: np.zeros(n) for k in kinds}} for name in METHODS
    }
    knn = {"clean": np.zeros(n), **{k: np.zeros(n) for k in kinds}}
    lesion = {"clean": np.zeros(n), **{k: np.zeros(n) for k in kinds}}
    negatives, categories, auto_crop = rendered_negative_features(net, cache_dir, log)
    lesion_without = {category: np.zeros(n) for category in RENDERERS}  # OOF, that category held out
    chosen_c = {name: [] for name in METHODS}
    for k, (train_idx, test_idx) in enumerate(fold_list):
        log(f"fold {k + 1}/{folds}")
        for name, (aug, tta, ensemble) in METHODS.items():
            c = choose_c(cache, train_idx, labels, groups, aug, seed)
            chosen_c[name].append(c)
            if ensemble:
                inner = grouped_folds(labels[train_idx], groups[train_idx], 5, seed)
                heads = [
                    LinearHead(c).fit(*_rows(cache, train_idx[fit_i], labels, groups, aug)[:2]) for fit_i, _ in inner
                ]
            else:
                heads = [LinearHead(c).fit(*_rows(cache, train_idx, labels, groups, aug)[:2])]
            oof[name]["clean"][test_idx] = _score(heads, cache["plain_tta"][test_idx], tta)
            for kind in kinds:
                oof[name][kind][test_idx] = _score(heads, cache[f"shift_{kind}"][test_idx], tta)
        bank = normalise(cache["plain_tta"][train_idx, 0])
        knn["clean"][test_idx] = knn_distance(cache["plain_tta"][test_idx, 0], bank, KNN_K)
        for kind in kinds:
            knn[kind][test_idx] = knn_distance(cache[f"shift_{kind}"][test_idx, 0], bank, KNN_K)
        lesions = _rows(cache, train_idx, labels, groups, "standard")[0]
        check = fit_lesion_check(lesions, negatives)
        lesion["clean"][test_idx] = check.logit(cache["plain_tta"][test_idx, 0].float().numpy())
        for kind in kinds:
            lesion[kind][test_idx] = check.logit(cache[f"shift_{kind}"][test_idx, 0].float().numpy())
        for category in RENDERERS:
            lesion_without[category][test_idx] = fit_lesion_check(lesions, negatives[categories != category]).logit(
                cache["plain_tta"][test_idx, 0].float().numpy()
            )

    if finetune:
        oof["finetune"] = _finetune_oof(samples, images, labels, cache, fold_list, seed, views, cache_dir, log)

    report = {
        "data": str(data),
        "n": n,
        "n_patients": len(set(groups)),
        "folds": folds,
        "seed": seed,
        "views": views,
        "chosen_c": chosen_c,
        "methods": {},
    }
    pooled_shift = np.concatenate([np.arange(n)] * len(SHIFTS))
    for split in ("clean",) + SHIFTS + ("shifted_pooled",):
        if split == "shifted_pooled":
            scores = {m: np.concatenate([oof[m][k] for k in SHIFTS]) for m in oof}
            lab, grp = labels[pooled_shift], groups[pooled_shift]
        else:
            scores = {m: oof[m][split] for m in oof}
            lab, grp = labels, groups
        for name, entry in bootstrap_auc(lab, scores, grp, "logistic", n_boot, seed).items():
            report["methods"].setdefault(name, {})[split] = entry
    log(_methods_table(report))

    report["shipped_method"] = ship
    aug, tta, ensemble = METHODS[ship]
    logits = oof[ship]["clean"]
    # Calibration: Platt fitted on each fold's OOF logits from the other folds (cross-fitted) to
    # report it honestly; the shipped (a, b) is fitted on all OOF logits.
    fold_of = np.zeros(n, dtype=int)
    for k, (_, test_idx) in enumerate(fold_list):
        fold_of[test_idx] = k
    cross = np.zeros(n)
    for k in range(folds):
        a, b = platt(logits[fold_of != k], labels[fold_of != k])
        cross[fold_of == k] = _sigmoid(a * logits[fold_of == k] + b)
    a, b = platt(logits, labels)
    probabilities = _sigmoid(a * logits + b)
    threshold = threshold_for_sensitivity(labels, probabilities, target_sensitivity)
    report["calibration"] = {
        "a": a,
        "b": b,
        "uncalibrated_sigmoid_of_logit": calibration_summary(_sigmoid(logits), labels),
        "platt_cross_fitted": calibration_summary(cross, labels),
        "platt_on_shifted_pooled": calibration_summary(
            _sigmoid(a * np.concatenate([oof[ship][k] for k in SHIFTS]) + b), labels[pooled_shift]
        ),
    }
    report["operating_point"] = {
        "target_sensitivity": target_sensitivity,
        "threshold": threshold,
        "clean_oof": bootstrap_rates(labels, probabilities, threshold, groups, n_boot, seed),
        "shifted_pooled_oof": bootstrap_rates(
            labels[pooled_shift],
            _sigmoid(a * np.concatenate([oof[ship][k] for k in SHIFTS]) + b),
            threshold,
            groups[pooled_shift],
            n_boot,
            seed,
        ),
    }
    all_lesions = _rows(cache, np.arange(n), labels, groups, "standard")[0]
    lesion_weight, lesion_bias = fit_lesion_check(all_lesions, negatives).weights()
    quality = quality_of_copies(cache, images)
    report["assessment"], rule = _assessment_report(
        quality,
        knn,
        lesion if lesion_check else None,
        lesion_bias,
        labels,
        threshold,
        {k: _sigmoid(a * oof[ship][k] + b) for k in kinds},
        probabilities,
    )
    report["lesion_check"] = _lesion_check_report(
        rule, quality, knn, lesion, lesion_without, all_lesions, negatives, categories, auto_crop
    )
    log(json.dumps(report["lesion_check"], indent=1))
    out.mkdir(parents=True, exist_ok=True)
    np.savez(
        out / "oof.npz",
        labels=labels,
        groups=groups,
        fold=fold_of,
        **{f"{m}__{k}": v for m in oof for k, v in oof[m].items()},  # logits
        **{f"knn__{k}": v for k, v in knn.items()},
        **{f"lesion__{k}": v for k, v in lesion.items()},
    )
    if checkpoint is not None:
        report["checkpoint"] = _ship(
            checkpoint,
            cache,
            labels,
            groups,
            samples,
            data,
            ship,
            report,
            rule,
            lesion_weight if lesion_check else None,
            net,
            seed,
            log,
        )
    (out / "study.json").write_text(json.dumps(report, indent=1))
    log(f"wrote {out / 'study.json'}")
    return report


def fit_lesion_check(lesions: np.ndarray, negatives: torch.Tensor) -> LinearHead:
    """The lesion-present unit: lesion crops (rows of pooled features) against rendered negatives."""
    x = np.concatenate([lesions, negatives.float().numpy()])
    y = np.concatenate([np.ones(len(lesions)), np.zeros(len(negatives))])
    return LinearHead(LESION_CHECK_C).fit(x, y)


def _assessment_report(
    quality, knn, lesion, lesion_bias, labels, threshold, shifted_probabilities, clean_probabilities
):
    """Assessability rule fitted on the training crops (quality), OOF distances (OOD) and OOF
    lesion-present scores, and how it does on the shifted and must-reject copies (never used to
    fit it)."""
    limits = fit_quality_thresholds(quality["clean"])
    max_distance = float(np.quantile(knn["clean"], ASSESSABLE_QUANTILE))
    rule = {
        "knn_k": KNN_K,
        "max_knn_distance": max_distance,
        **limits,
        "fitted_on": f"quality limits: {100 * (1 - 2 * 0.01):.0f} % range of the training crops; "
        f"OOD limit: {ASSESSABLE_QUANTILE:.0%} quantile of out-of-fold kNN distances "
        "of the training lesions (patient-grouped CV)",
    }
    if lesion is not None:
        rule.update(
            lesion_bias=lesion_bias, min_lesion_score=float(np.quantile(lesion["clean"], 1 - LESION_CHECK_QUANTILE))
        )
        rule["fitted_on"] += (
            f"; lesion-present limit: {1 - LESION_CHECK_QUANTILE:.0%} quantile of their out-of-fold "
            f"lesion-present scores (unit fitted against ml.research.negatives renders, seed {LESION_CHECK_SEED})"
        )
    report = {"rule": rule}
    for kind, found in _reasons(rule, quality, knn, lesion).items():
        assessable = np.array([not r for r in found])
        probabilities = clean_probabilities if kind == "clean" else shifted_probabilities[kind]
        entry = {
            "n": len(found),
            "assessable": int(assessable.sum()),
            "assessable_share": float(assessable.mean()),
            "assessable_ci95": list(wilson_ci(int(assessable.sum()), len(found))),
            "reasons": {r: found.count(r) for r in sorted(set(found)) if r},
        }
        positive = labels == 1
        flagged = assessable & (probabilities >= threshold)
        entry["sensitivity_assessable_mpox"] = (
            float(flagged[positive & assessable].mean()) if (positive & assessable).any() else None
        )
        entry["specificity_assessable_non_mpox"] = (
            float(1 - flagged[~positive & assessable].mean()) if (~positive & assessable).any() else None
        )
        report[kind] = entry
    return report, rule


def _reasons(rule: dict, quality, knn, lesion) -> dict[str, list[str]]:
    """Per copy kind, the rule's verdict on every OOF copy."""
    assessor = Assessor(rule)
    kinds = ("clean",) + SHIFTS + MUST_REJECT
    if lesion is None:  # a rule without the lesion-present check
        lesion = {kind: [float("inf")] * len(quality[kind]) for kind in kinds}
    return {
        kind: [assessor.reason(q, d, s) for q, d, s in zip(quality[kind], knn[kind], lesion[kind])] for kind in kinds
    }


def _lesion_check_report(
    rule, quality, knn, lesion, lesion_without, all_lesions, negatives, categories, auto_crop
) -> dict:
    """The lesion check's trade-off, training data only: per share of OOF lesion crops let
    through, the lesion photos judged assessable (whole rule) and, per render category held out of
    the unit's training, the share of that category's automatic-ROI crops that pass the check."""
    held_out = {
        category: fit_lesion_check(all_lesions, negatives[categories != category]).logit(
            negatives[(categories == category) & auto_crop].float().numpy()
        )
        for category in RENDERERS
    }
    rows = []
    for quantile in LESION_CHECK_QUANTILES_REPORTED:
        limit = float(np.quantile(lesion["clean"], 1 - quantile))
        found = _reasons({**rule, "min_lesion_score": limit}, quality, knn, lesion)
        rows.append(
            {
                "lesions_let_through": quantile,
                "min_lesion_score": limit,
                "assessable_share": {
                    kind: float(np.mean([not r for r in found[kind]])) for kind in ("clean",) + SHIFTS
                },
                "held_out_category_passes": {
                    category: float(np.mean(scores >= np.quantile(lesion_without[category], 1 - quantile)))
                    for category, scores in held_out.items()
                },
            }
        )
    return {
        "c": LESION_CHECK_C,
        "negatives_seed": LESION_CHECK_SEED,
        "n_negative_crops": int(len(negatives)),
        "n_negative_renders": int(auto_crop.sum()),
        "shipped_quantile": LESION_CHECK_QUANTILE,
        "tradeoff": rows,
    }


def _finetune_oof(samples, images, labels, cache, fold_list, seed, views, cache_dir, log) -> dict:
    """The previous shipped recipe (head + last block fine-tuned) on the same folds; its fold
    models score the shifted copies of their held-out patients."""
    from ..checkpoint import make_metadata as meta
    from ..torch_runtime import torch_model

    config = TrainConfig(arch=ARCH, init="imagenet", views=views, epochs=100, finetune_epochs=15, seed=seed)
    nets = {}
    report, _, _ = cross_validate(
        samples,
        images,
        config,
        len(fold_list),
        0.95,
        log,
        fold_model_saver=lambda k, net, idx: nets.__setitem__(k, net),
        cache_dir=cache_dir,
    )
    scores = {"clean": _logit(np.array([p["score"] for p in report["predictions"]]))}
    for kind in SHIFTS:
        scores[kind] = np.zeros(len(samples))
    for k, (_, test_idx) in enumerate(fold_list):
        model = torch_model(
            nets[k],
            meta(arch=ARCH, input_size=SIZE, threshold=0.5, version=f"fold{k}", init="imagenet"),
            auto_roi=False,
        )
        for kind in SHIFTS:
            crops = [cache["shift_images"][kind][i] for i in test_idx]
            scores[kind][test_idx] = _logit(model.predict_proba(crops, [None] * len(crops)))
    return scores


def _methods_table(report: dict) -> str:
    lines = ["method | clean OOF AUC [95% CI] | shifted pooled AUC [95% CI] | shifted diff vs logistic [95% CI]"]
    for name, entry in report["methods"].items():
        clean, shifted = entry["clean"], entry["shifted_pooled"]
        diff = (
            f"{shifted['diff_vs_baseline']:+.3f} [{shifted['diff_ci95'][0]:+.3f}, {shifted['diff_ci95'][1]:+.3f}]"
            if "diff_vs_baseline" in shifted
            else "baseline"
        )
        lines.append(
            f"{name} | {clean['auc']:.3f} [{clean['ci95'][0]:.3f}, {clean['ci95'][1]:.3f}] | "
            f"{shifted['auc']:.3f} [{shifted['ci95'][0]:.3f}, {shifted['ci95'][1]:.3f}] | {diff}"
        )
    return "\n".join(lines)


def _ship(
    path: Path,
    cache,
    labels,
    groups,
    samples,
    data: Path,
    ship: str,
    report: dict,
    rule: dict,
    lesion_weight: np.ndarray | None,
    net: LesionNet,
    seed: int,
    log,
) -> dict:
    """Fits the shipped method on all images and writes the checkpoint (weights, calibration,
    threshold, assessability rule and feature bank)."""
    aug, tta, ensemble = METHODS[ship]
    if tta or ensemble:
        raise SystemExit(
            f"--ship {ship}: only single-model, single-view methods fit the one-pass "
            "worker; ship one of " + ", ".join(m for m, v in METHODS.items() if not (v[1] or v[2]))
        )
    everyone = np.arange(len(labels))
    c = choose_c(cache, everyone, labels, groups, aug, seed)
    head = LinearHead(c).fit(*_rows(cache, everyone, labels, groups, aug)[:2])
    weight, bias = head.weights()
    with torch.no_grad():
        net.head.fc.weight.copy_(torch.tensor(weight, dtype=torch.float32).view(1, -1))
        net.head.fc.bias.fill_(bias)
    point = report["operating_point"]
    clean = point["clean_oof"]
    n_pos = int(labels.sum())
    metadata = make_metadata(
        arch=ARCH,
        input_size=SIZE,
        init="imagenet",
        version=(
            f"{ARCH}-imagenet-{ship.replace('+', '-')}{'-lesioncheck' if lesion_weight is not None else ''}"
            f"-msld1-{time.strftime('%Y-%m-%d')}"
        ),
        threshold=point["threshold"],
        operating_point=(
            f"calibrated P >= {point['threshold']:.4f}: highest threshold with out-of-fold "
            f"sensitivity >= {point['target_sensitivity']:.2f} ({report['folds']}-fold "
            f"patient-grouped CV); OOF sensitivity {clean['sensitivity']:.3f}, "
            f"specificity {clean['specificity']:.3f}"
        ),
        training_data=(
            f"{data.name}: {len(labels)} images ({n_pos} mpox, {len(labels) - n_pos} non_mpox) "
            f"of {len(set(groups))} patients. MSLD v1 (Ali et al. 2022), CC BY-NC-SA 4.0."
        ),
        cv_metrics={
            "folds": report["folds"],
            "method": ship,
            "clean_oof_auc": report["methods"][ship]["clean"],
            "shifted_pooled_oof_auc": report["methods"][ship]["shifted_pooled"],
            # same shape as `ml cv` reports ({"mean": ...} per metric): the portal reads it
            "at_threshold": {
                name: {"mean": clean[name], "ci95": clean[f"{name}_ci95"]} for name in ("sensitivity", "specificity")
            },
        },
        calibration={
            "method": "platt",
            "a": report["calibration"]["a"],
            "b": report["calibration"]["b"],
            "fitted_on": "out-of-fold logits of the patient-grouped CV",
        },
        assessment=rule,
        head={"method": ship, "C": c},
        training_patients=sorted(set(groups.tolist())),
    )
    bank = normalise(cache["plain_tta"][:, 0]).half()
    extra_state = {BANK_KEY: bank}
    if lesion_weight is not None:
        extra_state[LESION_KEY] = torch.tensor(lesion_weight, dtype=torch.float32)
    saved = save_checkpoint(path, net, metadata, extra_state=extra_state)
    log(f"saved {saved} ({saved.stat().st_size / 1e6:.1f} MB), version {metadata['version']}")
    return {
        "path": str(saved),
        "version": metadata["version"],
        "C": c,
        "megabytes": round(saved.stat().st_size / 1e6, 2),
    }
