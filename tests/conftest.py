"""Shared fixtures: private cache folders, where the real data lives, tiny inputs."""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sktransfer.datasets import find_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]

# Every variable naming a folder that the library or its dependencies write
# into during a test run, and the sub-folder of the run's temporary folder it
# points at instead.
_WRITABLE_FOLDERS = {
    "SKTRANSFER_CACHE": "sktransfer",  # exported ONNX graphs
    "TORCH_HOME": "torch",  # torchvision weight downloads (torch.hub)
    "MPLCONFIGDIR": "matplotlib",  # font cache
    "XDG_CACHE_HOME": "xdg-cache",  # anything else following the XDG layout
    "HF_HOME": "huggingface",  # the Hugging Face cache (timm/ and hf-hub: weights), see timm_hub
}
# Set for the run: no test downloads from the Hugging Face hub; HF_HUB_CACHE
# would take precedence over HF_HOME, so it is unset.
_FIXED_ENV = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": None}
_SAVED_ENV = pytest.StashKey()
_CACHE_ROOT = pytest.StashKey()


def pytest_configure(config):
    """Point every cache at a folder of this run, before anything is imported.

    A hook rather than a fixture: the docstring examples under sktransfer/ are
    outside this folder's fixtures, and matplotlib reads its folder on import,
    which may happen while test modules are collected.
    """
    root = tempfile.mkdtemp(prefix="sktransfer-tests-")
    config.stash[_CACHE_ROOT] = root
    config.stash[_SAVED_ENV] = {name: os.environ.get(name) for name in (*_WRITABLE_FOLDERS, *_FIXED_ENV)}
    for name, folder in _WRITABLE_FOLDERS.items():
        os.environ[name] = os.path.join(root, folder)
    for name, value in _FIXED_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_unconfigure(config):
    for name, value in config.stash.get(_SAVED_ENV, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if _CACHE_ROOT in config.stash:
        shutil.rmtree(config.stash[_CACHE_ROOT], ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``openvino`` where the package is not installed.

    OpenVINO is a dependency only where it has wheels; elsewhere (and on a GPU
    machine's own Python) the rest of the suite still runs.
    """
    from sktransfer.runtime import engine_available

    if engine_available("openvino"):
        return
    skip = pytest.mark.skip(reason="openvino is not installed (wheels exist for x86-64 and 64-bit ARM only)")
    for item in items:
        if item.get_closest_marker("openvino") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cache_root(pytestconfig):
    """The run's temporary folder holding every cache (see pytest_configure)."""
    return Path(pytestconfig.stash[_CACHE_ROOT])


@pytest.fixture(scope="session")
def data_dir():
    """The folder holding ``hymenoptera/`` and ``flowers/`` (see find_data_dir)."""
    path = find_data_dir("hymenoptera", "flowers")
    if path is None:
        pytest.skip(
            "real image data not found: set SKTRANSFER_DATA to a folder holding "
            "hymenoptera/ and flowers/ (see sktransfer.datasets.find_data_dir)"
        )
    return Path(path)


@pytest.fixture(scope="session")
def reference_dir():
    """``$SKTRANSFER_REFERENCE``, else ``../shared/reference`` next to the checkout."""
    path = Path(os.environ.get("SKTRANSFER_REFERENCE") or REPO_ROOT.parent / "shared" / "reference")
    if not (path / "efficientnet_lite0_hymenoptera.npz").is_file():
        pytest.skip(f"reference arrays not found in {path}")
    return path


@pytest.fixture(scope="module")
def tiny_images():
    """Eight small random RGB uint8 images, HWC, of two sizes."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(40 + 4 * (i % 2), 48, 3), dtype=np.uint8) for i in range(8)]


@pytest.fixture(scope="session")
def flower_embeddings(data_dir):
    """EfficientNet-Lite0 embeddings of 60 flowers photos per class (fixed pick)."""
    from sktransfer import PretrainedFeatureExtractor
    from sktransfer.datasets import load_image_folder

    paths, labels = load_image_folder(data_dir / "flowers")
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), 60, replace=False) for c in np.unique(labels)])
    X = PretrainedFeatureExtractor().fit_transform([paths[i] for i in rows])
    return X, np.asarray(labels)[rows]


#: Random-initialised timm models put in the test run's Hugging Face cache by timm_hub.
TIMM_TEST_MODELS = ("vit_tiny_patch16_224", "convnext_atto", "resnet10t")


@pytest.fixture(scope="session")
def timm_hub(cache_root):
    """A Hugging Face cache (under the run's ``HF_HOME``) holding random-initialised small timm models.

    Laid out as ``huggingface_hub`` writes it: ``models--timm--<name>.<tag>/``
    with ``refs/main`` naming a commit, ``snapshots/<commit>/model.safetensors``
    and ``config.json`` (written by timm's ``save_for_hf``, as timm's hub
    repositories hold them) linking to ``blobs/<sha256 of the content>``.
    Returns {timm name: hub repository id}. Built once per run, seeded.
    """

    import timm
    import torch
    from timm.models import get_pretrained_cfg
    from timm.models._hub import save_for_hf

    hub = Path(os.environ["HF_HOME"]) / "hub"
    repos = {}
    for name in TIMM_TEST_MODELS:
        repo_id = get_pretrained_cfg(name).hf_hub_id
        torch.manual_seed(0)
        net = timm.create_model(name, pretrained=False)
        staging = cache_root / "timm-staging" / name
        save_for_hf(net, staging, safe_serialization=True)
        files = {filename: (staging / filename).read_bytes() for filename in ("model.safetensors", "config.json")}
        put_in_hub_cache(hub, repo_id, files)
        repos[name] = repo_id
    return repos


def put_in_hub_cache(hub, repo_id, files):
    """Write ``files`` ({name: bytes}) as the ``main`` snapshot of ``repo_id`` in the hub cache folder ``hub``."""
    import hashlib

    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    folder = Path(hub) / ("models--" + repo_id.replace("/", "--"))
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    for filename, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = folder / "snapshots" / commit / filename
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, link.parent))
    (folder / "refs" / "main").write_text(commit)


@pytest.fixture(scope="session")
def timm_hub_variant(timm_hub):
    """Copy a ``timm_hub`` model to hub repository ``repo_id`` with its pretrained configuration changed.

    Returns a function ``(name, repo_id, **cfg) -> repo_id``: the weights of
    ``timm_hub[name]``, its ``config.json`` with ``pretrained_cfg`` updated
    by ``cfg`` (e.g. ``crop_mode="squash"``), for ``hf-hub:<repo_id>``.
    """
    import json

    hub = Path(os.environ["HF_HOME"]) / "hub"

    def make(name, repo_id, **cfg):
        source = hub / ("models--" + timm_hub[name].replace("/", "--"))
        snapshot = source / "snapshots" / (source / "refs" / "main").read_text().strip()
        config = json.loads((snapshot / "config.json").read_text())
        config["pretrained_cfg"].update(cfg)
        files = {"model.safetensors": (snapshot / "model.safetensors").read_bytes()}
        files["config.json"] = json.dumps(config).encode()
        put_in_hub_cache(hub, repo_id, files)
        return repo_id

    return make
