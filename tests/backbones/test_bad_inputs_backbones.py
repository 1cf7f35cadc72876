"""Bad inputs and faults of saved backbones, one row each.

Each row is (id, fault, expected): ``fault(ctx)`` sets the fault up and runs
the code under test; ``expected`` is either ``Raises(type, fragment)`` or a
``Policy(check)`` whose ``check(ctx, result)`` asserts the documented
behaviour. Most are about networks saved by name (without their tensors):
whatever changed since, they must never embed with other weights.
"""

import pickle
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torchvision
from _catalogue import Policy, Raises, assert_catalogue, check_row

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones import get_backbone, make_tiny_backbone
from sktransfer.backbones._persist import backbone_from_recipe, backbone_recipe, check_recipe


@dataclass
class Ctx:
    tmp: object
    images: list


def _fitted_on_a_file(ctx, seed=0):
    torch.manual_seed(seed)
    path = ctx.tmp / "squeeze.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    est = PretrainedFeatureExtractor(model="squeezenet1_1", weights=str(path), engine="torch", num_workers=0)
    return est.fit(ctx.images), path


def _rewritten_file(ctx):
    est, path = _fitted_on_a_file(ctx)
    blob = pickle.dumps(est)
    torch.manual_seed(1)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    return pickle.loads(blob).transform(ctx.images)


def _removed_file(ctx):
    est, path = _fitted_on_a_file(ctx)
    blob = pickle.dumps(est)
    path.unlink()
    return pickle.loads(blob).transform(ctx.images)


def _same_file_again(ctx):
    est, path = _fitted_on_a_file(ctx)
    blob = pickle.dumps(est)
    path.write_bytes(path.read_bytes())  # rewritten with the same bytes: new stat, same content
    return est.transform(ctx.images), pickle.loads(blob).transform(ctx.images), len(blob)


def _equal_and_small(ctx, result):
    before, after, size = result
    np.testing.assert_array_equal(after, before)
    assert size < 100_000


def _modified_network(ctx):
    est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, engine="torch", num_workers=0)
    est.fit(ctx.images)
    with torch.no_grad():
        next(est.backbone_.parameters()).add_(1.0)  # changed after fitting: no longer the named weights
    return pickle.loads(pickle.dumps(est)).transform(ctx.images)


def _named(**changes):
    recipe = backbone_recipe(make_tiny_backbone(), "tiny_convnet", None, tensors=False)
    return {**recipe, **changes}


ROWS = [
    ("weights_file_rewritten_since_fitting", _rewritten_file, Raises(ValueError, "not the ones it was fitted with")),
    (
        "weights_file_removed_since_fitting",
        _removed_file,
        Raises(FileNotFoundError, "saved by name, not with its tensors"),
    ),
    (
        "weights_file_rewritten_with_the_same_bytes",
        _same_file_again,
        Policy(_equal_and_small, "content, not the file's time stamps, identifies weights"),
    ),
    (
        "fitted_network_modified_before_pickling",
        _modified_network,
        Raises(ValueError, "the fitted network was modified before saving"),
    ),
    (
        "named_recipe_without_identity",
        lambda ctx: check_recipe(_named(identity=None)),
        Raises(ValueError, "without tensors must name its weights identity and digest"),
    ),
    (
        "named_recipe_with_a_number_as_digest",
        lambda ctx: check_recipe(_named(digest=3)),
        Raises(ValueError, "identity and digest with strings"),
    ),
    (
        "named_recipe_with_another_digest",
        lambda ctx: backbone_from_recipe(_named(digest="0" * 64)),
        Raises(ValueError, "does not hold the tensors it was saved with"),
    ),
    (
        "named_recipe_of_an_unknown_model",
        lambda ctx: check_recipe(_named(model="resnet17")),
        Raises(ValueError, "unknown model 'resnet17'"),
    ),
    (
        "random_weights_cannot_be_named",
        lambda ctx: backbone_recipe(get_backbone("squeezenet1_1", None), "squeezenet1_1", None, tensors=False),
        Raises(ValueError, "cannot be named, so a recipe must carry its tensors"),
    ),
    (
        "named_recipe_whose_identity_changed",
        lambda ctx: backbone_from_recipe(_named(identity="tiny_convnet|seed=1")),
        Raises(ValueError, "are not the ones it was fitted with"),
    ),
]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(4)
    return [rng.integers(0, 256, (36, 36, 3), dtype=np.uint8) for _ in range(2)]


def test_catalogue_is_large_and_ids_are_unique():
    assert_catalogue(ROWS, 8)


@pytest.mark.parametrize("row_id, fault, expected", ROWS, ids=[row[0] for row in ROWS])
def test_bad_input(row_id, fault, expected, tmp_path, images):
    ctx = Ctx(tmp=tmp_path, images=images)
    check_row(fault, expected, ctx)
