"""The differential: shape and sum, the same single backbone pass, and older checkpoints without one."""

import numpy as np
import pytest
from PIL import Image

import ml
import ml.testing
from ml.differential import MPOX

CLASSES = ("mpox", "chickenpox_or_measles", "genital_herpes", "genital_warts", "syphilis", "healthy_skin")


@pytest.fixture(scope="module")
def differential_model(tmp_path_factory):
    path = ml.testing.make_random_checkpoint(
        tmp_path_factory.mktemp("diff") / "d.pt", arch="efficientnet_lite0", input_size=64, differential_classes=CLASSES
    )
    return ml.load(path, auto_roi=False)


def _photos(n=3):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (80 + 10 * i, 96, 3), dtype=np.uint8)) for i in range(n)]


def test_differential_covers_every_class_and_sums_to_one(differential_model):
    for analysis in differential_model.analyse_batch(_photos()):
        assert set(analysis.differential) == set(CLASSES)
        assert sum(analysis.differential.values()) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in analysis.differential.values())
        # the differential's mpox entry is the calibrated flagging score itself
        assert analysis.differential[MPOX] == pytest.approx(analysis.probability)


def test_one_backbone_pass_gives_probability_differential_assessability_and_heatmap(differential_model):
    calls = []
    hook = differential_model.backbone.net.features.register_forward_hook(lambda *args: calls.append(1))
    try:
        analyses = differential_model.analyse_batch(_photos(2))
    finally:
        hook.remove()
    assert len(calls) == 1  # one batch, one forward through the backbone
    assert all(a.differential and a.heatmap.size and a.reason in ("", *ml.assessment.REASONS) for a in analyses)


def test_checkpoint_without_a_differential_still_loads(tmp_path):
    model = ml.load(ml.testing.make_random_checkpoint(tmp_path / "old.pt", input_size=64), auto_roi=False)
    analysis = model.analyse(_photos(1)[0])
    assert analysis.differential == {} and 0.0 <= analysis.probability <= 1.0


def test_differential_weights_that_do_not_fit_the_classes_are_refused(tmp_path):
    import torch

    from ml.checkpoint import read_checkpoint, save_checkpoint
    from ml.differential import WEIGHT_KEY

    path = ml.testing.make_random_checkpoint(
        tmp_path / "d.pt", arch="efficientnet_lite0", input_size=64, differential_classes=CLASSES
    )
    metadata, state = read_checkpoint(path)
    metadata["differential"]["classes"] = list(CLASSES[:3])
    net = ml.checkpoint.build_network(metadata, state)
    extra = {k: v for k, v in state.items() if k.startswith(("assessment.", "differential."))}
    save_checkpoint(tmp_path / "bad.pt", net, metadata, extra_state=extra)
    with pytest.raises(ValueError, match="differential"):
        ml.load(tmp_path / "bad.pt")
    assert torch.is_tensor(state[WEIGHT_KEY])
