"""Training (transfer learning as in Soe et al., JMIR 2024) and patient-grouped cross-validation.

Transfer mode (``--init imagenet`` or ``--init PATH``): the backbone trunk is frozen, so its output
is computed once for the plain view plus ``views`` augmented views of every image and cached. Stage 1
trains a new head (dropout + linear) on pooled features of the cached views; optional stage 2
(``finetune_epochs``) unfreezes the last block(s) (``ArchSpec.tail_start`` onwards) and trains them
with the head on the cached trunk outputs (batch-norm statistics stay frozen). The cache does not
depend on the fold, so cross-validation computes it once.

Scratch mode (``--init none``): the whole network is trained end to end on freshly augmented images.

Images enter as :func:`load_images` makes them: cropped to their CSV box when one is given (what
the model sees at inference) and resized to the input size.

Both modes: class-balanced loss (positive weight = negatives / positives), early stopping on the
validation AUC of a patient-grouped split of the training data, seeded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2 as T

from ..architectures import LesionNet, get_arch
from ..checkpoint import CheckpointError, read_checkpoint
from ..metrics import binary_metrics, mean_sd, roc_auc, threshold_for_sensitivity
from ..preprocess import crop_resize, load_image, to_batch
from .data import Sample, grouped_folds, grouped_holdout

Log = Callable[[str], None]


@dataclass
class TrainConfig:
    arch: str = "densenet121"
    init: str = "imagenet"  # "imagenet" | "none" | path to a checkpoint / state dict
    input_size: int = 224
    views: int = 8  # cached augmented views per image (transfer mode)
    epochs: int = 100  # head epochs (transfer) or total epochs (scratch)
    finetune_epochs: int = 0  # transfer stage 2: train the backbone tail too
    lr: float = 1e-3
    finetune_lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    patience: int = 15
    val_fraction: float = 0.2
    dropout: float = 0.2
    seed: int = 0

    @property
    def transfer(self) -> bool:
        return self.init != "none"


def augmentation(size: int) -> T.Compose:
    """Rotation, crop + zoom, flips, brightness/contrast."""
    return T.Compose(
        [
            T.RandomRotation(20),
            T.RandomResizedCrop(size, scale=(0.6, 1.0), ratio=(0.85, 1.18), antialias=True),
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.ColorJitter(brightness=0.25, contrast=0.25),
        ]
    )


def build_initial_network(config: TrainConfig) -> LesionNet:
    torch.manual_seed(config.seed)  # the new head's initialisation
    spec = get_arch(config.arch)
    if config.init in ("imagenet", "none"):
        net = spec.build(config.init)
    else:
        net = spec.build("none")
        _load_initial_weights(net, Path(config.init), config.arch)
    net.head.dropout.p = config.dropout
    return net


def _load_initial_weights(net: LesionNet, path: Path, arch: str) -> None:
    """Our checkpoint (same architecture) or a plain state dict whose ``features.*`` keys fit."""
    try:
        metadata, state = read_checkpoint(path)
        if metadata["arch"] != arch:
            raise SystemExit(f"--init {path}: checkpoint is {metadata['arch']}, not {arch}")
    except CheckpointError:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if k.startswith("features.")}
    result = net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    missing = [k for k in result.missing_keys if k.startswith("features.")]
    if missing or not state:
        raise SystemExit(
            f"--init {path}: weights do not fit {arch} "
            f"(missing e.g. {missing[:3]}); use '--init none' or '--init imagenet'"
        )


def image_keys(samples: list[Sample]) -> list[str]:
    """Identifies the images (path, size, mtime) for the on-disk feature cache."""
    return [f"{s.path}:{s.path.stat().st_size}:{s.path.stat().st_mtime_ns}" for s in samples]


def load_images(samples: list[Sample], input_size: int) -> list[Image.Image]:
    """Each image cropped to its CSV box (if any) and resized to the network input, as the model
    sees it at inference; augmentation starts from these."""
    return [crop_resize(load_image(s.path), s.box, input_size) for s in samples]


class TransferCache:
    """Frozen-trunk outputs of the plain view (index 0) and augmented views of every image.

    With ``cache_dir`` the tensors are kept on disk, keyed by the images and every setting that
    changes them, so repeated runs (CV, then the final model) skip the backbone."""

    def __init__(
        self,
        net: LesionNet,
        images: list[Image.Image],
        config: TrainConfig,
        log: Log,
        cache_dir: Path | None = None,
        image_keys: list[str] | None = None,
    ):
        spec = get_arch(config.arch)
        _, tail = spec.split_features(net)
        net.eval().to(memory_format=torch.channels_last)
        path = None
        if cache_dir is not None:
            init_file = Path(config.init)
            init_stamp = init_file.stat().st_mtime_ns if init_file.is_file() else None
            key = json.dumps(
                [config.arch, config.init, init_stamp, config.input_size, config.views, config.seed, image_keys or []]
            )
            path = Path(cache_dir) / f"{config.arch}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
            if path.is_file():
                self.trunk_out, self.pooled = torch.load(path, weights_only=True)
                log(f"  loaded cached backbone outputs from {path}")
                return
        self._compute(net, images, config, log)
        with torch.inference_mode():  # pooled features with the pretrained tail
            self.pooled = torch.stack([net.pooled(tail(c.float())) for c in self.trunk_out])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save((self.trunk_out, self.pooled), path)

    def _compute(self, net: LesionNet, images: list[Image.Image], config: TrainConfig, log: Log):
        spec = get_arch(config.arch)
        trunk, _ = spec.split_features(net)
        augment = augmentation(config.input_size)
        torch.manual_seed(config.seed)
        chunks, start = [], time.perf_counter()
        for i, image in enumerate(images):
            views = [image] + [augment(image) for _ in range(config.views)]
            with torch.inference_mode():
                chunks.append(trunk(to_batch(views, spec.mean, spec.std)).half())
            if (i + 1) % 25 == 0 or i + 1 == len(images):
                log(
                    f"  cached {i + 1}/{len(images)} images x {config.views + 1} views "
                    f"({time.perf_counter() - start:.0f} s)"
                )
        self.trunk_out = torch.stack(chunks)  # (N, V+1, C, h, w) fp16


def _fit(
    net: LesionNet,
    parameters: list[torch.nn.Parameter],
    forward,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    epochs: int,
    lr: float,
    config: TrainConfig,
    log: Log,
    stage: str,
) -> dict:
    """Generic loop: ``forward(idx, train) -> logits``. Keeps the weights of the best validation AUC."""
    generator = torch.Generator().manual_seed(config.seed)
    y = torch.tensor(labels, dtype=torch.float32)
    n_pos = float(y[train_idx].sum())
    pos_weight = torch.tensor((len(train_idx) - n_pos) / max(n_pos, 1.0))
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=config.weight_decay)
    best = {"epoch": 0, "val_auc": -1.0, "val_loss": float("inf"), "state": None}
    waited = 0
    for epoch in range(1, epochs + 1):
        order = torch.as_tensor(train_idx)[torch.randperm(len(train_idx), generator=generator)]
        losses = []
        for batch in order.split(config.batch_size):
            loss = F.binary_cross_entropy_with_logits(forward(batch.numpy(), True), y[batch], pos_weight=pos_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        if len(val_idx) == 0:
            if epoch == 1 or epoch % 10 == 0 or epoch == epochs:
                log(f"  {stage} epoch {epoch}/{epochs}: train loss {np.mean(losses):.3f}")
            continue
        with torch.no_grad():
            val_logits = forward(val_idx, False)
            val_loss = F.binary_cross_entropy_with_logits(val_logits, y[val_idx], pos_weight=pos_weight).item()
        val_auc = roc_auc(labels[val_idx], val_logits.numpy())
        if (val_auc, -val_loss) > (best["val_auc"], -best["val_loss"]):
            best = {"epoch": epoch, "val_auc": val_auc, "val_loss": val_loss, "state": copy.deepcopy(net.state_dict())}
            waited = 0
        else:
            waited += 1
        if epoch == 1 or epoch % 10 == 0 or waited > config.patience:
            log(
                f"  {stage} epoch {epoch}: train loss {np.mean(losses):.3f}, val loss {val_loss:.3f}, "
                f"val AUC {val_auc:.3f} (best {best['val_auc']:.3f} @ {best['epoch']})"
            )
        if waited > config.patience:
            break
    if best["state"] is not None:
        net.load_state_dict(best["state"])
    return {"stage": stage, "best_epoch": best["epoch"], "val_auc": best["val_auc"], "epochs_run": epoch}


def _view_index(n: int, n_views: int, train: bool, generator: torch.Generator) -> torch.Tensor:
    if not train or n_views == 0:
        return torch.zeros(n, dtype=torch.long)
    return torch.randint(1, n_views + 1, (n,), generator=generator)


def train_network(
    images: list[Image.Image],
    labels: np.ndarray,
    groups: np.ndarray,
    train_idx: np.ndarray,
    config: TrainConfig,
    log: Log,
    cache: TransferCache | None = None,
    base_net: LesionNet | None = None,
) -> tuple[LesionNet, Callable[[np.ndarray], np.ndarray], list[dict]]:
    """Trains on ``train_idx`` (early stopping on a patient-grouped split of it). Returns the
    network, ``predict(idx) -> P(positive)`` for the plain views, and the training history."""
    torch.manual_seed(config.seed)
    spec = get_arch(config.arch)
    net = copy.deepcopy(base_net) if base_net is not None else build_initial_network(config)
    net.to(memory_format=torch.channels_last)
    if config.val_fraction > 0:
        inner_train, inner_val = grouped_holdout(labels[train_idx], groups[train_idx], config.val_fraction, config.seed)
        fit_idx, val_idx = train_idx[inner_train], train_idx[inner_val]
    else:
        fit_idx, val_idx = train_idx, np.array([], dtype=int)
    generator = torch.Generator().manual_seed(config.seed + 1)
    history = []
    for param in net.parameters():
        param.requires_grad_(False)

    if config.transfer:
        assert cache is not None, "transfer mode needs a TransferCache"
        net.eval()
        head = [net.head.fc.weight, net.head.fc.bias]
        for param in head:
            param.requires_grad_(True)

        def head_forward(idx, train):
            net.head.dropout.train(train)
            views = _view_index(len(idx), config.views, train, generator)
            return net.head.fc(net.head.dropout(cache.pooled[idx, views]))[:, 0]

        history.append(
            _fit(net, head, head_forward, labels, fit_idx, val_idx, config.epochs, config.lr, config, log, "head")
        )
        forward = head_forward
        if config.finetune_epochs > 0:
            _, tail = spec.split_features(net)
            tuned = head + [p for p in tail.parameters()]
            for param in tuned:
                param.requires_grad_(True)

            def tail_forward(idx, train):
                net.head.dropout.train(train)
                views = _view_index(len(idx), config.views, train, generator)
                x = cache.trunk_out[idx, views].float().contiguous(memory_format=torch.channels_last)
                return net.head.fc(net.head.dropout(net.pooled(tail(x))))[:, 0]

            history.append(
                _fit(
                    net,
                    tuned,
                    tail_forward,
                    labels,
                    fit_idx,
                    val_idx,
                    config.finetune_epochs,
                    config.finetune_lr,
                    config,
                    log,
                    "finetune",
                )
            )
            forward = tail_forward
    else:
        for param in net.parameters():
            param.requires_grad_(True)
        augment = augmentation(config.input_size)

        def forward(idx, train):
            net.train(train)
            views = [augment(images[i]) if train else images[i] for i in idx]
            return net(to_batch(views, spec.mean, spec.std))[:, 0]

        history.append(
            _fit(
                net,
                list(net.parameters()),
                forward,
                labels,
                fit_idx,
                val_idx,
                config.epochs,
                config.lr,
                config,
                log,
                "scratch",
            )
        )
    net.eval()
    for param in net.parameters():
        param.requires_grad_(False)

    def predict(idx: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(
                torch.cat([forward(chunk, False) for chunk in np.array_split(idx, max(1, len(idx) // 32))])
            ).numpy()

    return net, predict, history


def final_config(config: TrainConfig, report: dict) -> TrainConfig:
    """Settings for the final model: all data (no validation split), each stage run for the median
    of the best epochs that early stopping found in the CV folds."""
    best = {}
    for history in report["histories"]:
        for stage in history:
            best.setdefault(stage["stage"], []).append(stage["best_epoch"])
    first = "head" if config.transfer else "scratch"
    return replace(
        config,
        val_fraction=0.0,
        epochs=max(1, int(np.median(best[first]))),
        finetune_epochs=int(np.median(best["finetune"])) if "finetune" in best else 0,
    )


def cross_validate(
    samples: list[Sample],
    images: list[Image.Image],
    config: TrainConfig,
    n_folds: int,
    target_sensitivity: float,
    log: Log,
    fold_model_saver: Callable[[int, LesionNet, np.ndarray], None] | None = None,
    cache_dir: Path | None = None,
) -> tuple[dict, TransferCache | None, LesionNet | None]:
    """Patient-grouped k-fold CV. Returns (report, cache, base network) so a final model can reuse them."""
    labels = np.array([s.label for s in samples])
    groups = np.array([s.patient_id for s in samples])
    start = time.perf_counter()
    base_net = build_initial_network(config) if config.transfer else None
    cache = TransferCache(base_net, images, config, log, cache_dir, image_keys(samples)) if config.transfer else None
    oof = np.full(len(samples), np.nan)
    fold_of = np.full(len(samples), -1)
    per_fold, histories = [], []
    folds = grouped_folds(labels, groups, n_folds, config.seed)
    for k, (train_idx, test_idx) in enumerate(folds):
        log(
            f"fold {k + 1}/{n_folds}: {len(train_idx)} train / {len(test_idx)} test images, "
            f"{len(set(groups[test_idx]))} test patients"
        )
        net, predict, history = train_network(
            images, labels, groups, train_idx, config, log, cache=cache, base_net=base_net
        )
        oof[test_idx] = predict(test_idx)
        fold_of[test_idx] = k
        metrics = binary_metrics(labels[test_idx], oof[test_idx], 0.5)
        per_fold.append(metrics)
        histories.append(history)
        log(
            f"fold {k + 1}: AUC {metrics['auc']:.3f}, accuracy {metrics['accuracy']:.3f} "
            f"({time.perf_counter() - start:.0f} s elapsed)"
        )
        if fold_model_saver is not None:
            fold_model_saver(k, net, train_idx)
    threshold = threshold_for_sensitivity(labels, oof, target_sensitivity)
    at_threshold = [binary_metrics(labels[fold_of == k], oof[fold_of == k], threshold) for k in range(n_folds)]
    report = {
        "config": asdict(config),
        "folds": n_folds,
        "n": len(samples),
        "n_patients": len(set(groups.tolist())),
        "per_fold_at_0.5": per_fold,
        "summary_at_0.5": mean_sd(per_fold),
        "threshold": threshold,
        "target_sensitivity": target_sensitivity,
        "per_fold_at_threshold": at_threshold,
        "summary_at_threshold": mean_sd(at_threshold),
        "pooled_oof_at_threshold": binary_metrics(labels, oof, threshold),
        "pooled_oof_auc": roc_auc(labels, oof),
        "histories": histories,
        "seconds": time.perf_counter() - start,
        "predictions": [
            {"path": str(s.path), "patient_id": s.patient_id, "label": int(s.label), "fold": int(f), "score": float(p)}
            for s, f, p in zip(samples, fold_of, oof)
        ],
    }
    return report, cache, base_net


def fit_differential(
    net: LesionNet, images: list[Image.Image], classes: list[str | None], arch: str
) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """The differential head on the final network's pooled features of the plain images, over the
    classes the data's folders name (``ml.diagnoses.class_of``; None = no class, left out), mpox
    first: (metadata entry, extra state), or None with fewer than two classes or no mpox."""
    from ..diagnoses import MPOX
    from ..differential import BIAS_KEY, WEIGHT_KEY
    from .heads import WEIGHT_DECAY, SoftmaxHead

    named = sorted({c for c in classes if c is not None} - {MPOX})
    if MPOX not in classes or not named:
        return None
    order = [MPOX, *named]
    keep = [i for i, c in enumerate(classes) if c is not None]
    spec = get_arch(arch)
    net.eval()
    with torch.inference_mode():
        pooled = torch.cat(
            [
                net.pooled(net.features(to_batch([images[i] for i in keep[start : start + 32]], spec.mean, spec.std)))
                for start in range(0, len(keep), 32)
            ]
        )
    targets = np.array([order.index(classes[i]) for i in keep])
    weight, bias = SoftmaxHead(len(order), WEIGHT_DECAY).fit(pooled.numpy(), targets).raw_weights()
    counts = {name: int((targets == k).sum()) for k, name in enumerate(order)}
    entry = {"classes": order, "photos_per_class": counts, "method": "softmax head on the final network's features"}
    return entry, {WEIGHT_KEY: weight.float(), BIAS_KEY: bias.float()}
