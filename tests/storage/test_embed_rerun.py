"""A rerun of embed() on a finished table.

The table records the request that produced it (model, weights, layer,
which version of the weights file is on disk, library versions, host); a
rerun with the same request and images returns before torch is imported
or a network built. Anything else (another request, a table without one,
an extractor passed in) goes to the full comparison of the extractor's
``output_description()``, which alone refuses.
"""

import os
import subprocess
import sys

import pytest
from storage_helpers import tiny, write_images

from sktransfer import embed
from sktransfer.feature_extraction import _embed, _embed_existing

pytest.importorskip("pyarrow")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, HERE])}

TINY = dict(model="tiny_convnet", weights=None, verbose=0, batch_size=4)


@pytest.fixture
def folder(tmp_path):
    """Two class folders of two images each."""
    write_images(tmp_path / "images" / "ants", 2)
    write_images(tmp_path / "images" / "bees", 2, seed=1)
    return tmp_path / "images"


@pytest.fixture
def builds(monkeypatch):
    """How many times embed() prepared (built, fitted) an extractor."""
    calls = []
    real = _embed._prepare_extractor

    def counting(*args, **kwargs):
        calls.append(kwargs.get("model"))
        return real(*args, **kwargs)

    monkeypatch.setattr(_embed, "_prepare_extractor", counting)
    return calls


def _weights_file(path, seed):
    import torch

    from sktransfer.backbones._efficientnet_lite import build_efficientnet_lite

    torch.manual_seed(seed)
    torch.save(build_efficientnet_lite("efficientnet_lite0").state_dict(), path)
    return path


def test_a_rerun_of_the_same_request_imports_neither_torch_nor_pandas(folder, tmp_path):
    out = tmp_path / "e.parquet"
    embed(folder, out, **TINY)
    code = (
        "import sys\n"
        "from sktransfer import embed\n"
        "result = embed(sys.argv[1], sys.argv[2], model='tiny_convnet', weights=None, verbose=0, if_exists='reuse')\n"
        "assert result.up_to_date and result.n_images == 4 and result.n_computed == 0, result\n"
        "print(sorted(m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(out)], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_same_request_builds_no_network_and_another_falls_back_to_the_full_check(
    folder, tmp_path, builds, monkeypatch
):
    out = tmp_path / "e.parquet"
    first = embed(folder, out, **TINY)
    assert first.n_computed == 4 and len(builds) == 1

    again = embed(folder, out, **TINY, if_exists="reuse")
    assert again.up_to_date and again.n_images == 4 and len(builds) == 1

    # Another library version, another host: the quick key differs, the full
    # comparison builds the network and finds the same description.
    real_version = _embed_existing._installed_version
    monkeypatch.setattr(_embed_existing, "_installed_version", lambda name: "0.0-other")
    assert embed(folder, out, **TINY, if_exists="reuse").up_to_date
    assert len(builds) == 2
    monkeypatch.setattr(_embed_existing, "_installed_version", real_version)
    monkeypatch.setattr(_embed_existing.socket, "gethostname", lambda: "another-host")
    assert embed(folder, out, **TINY, if_exists="reuse").up_to_date
    assert len(builds) == 3


def test_a_rewritten_weights_file_is_refused_even_with_its_size_and_time_set_back(folder, tmp_path, builds):
    weights = str(_weights_file(tmp_path / "lite0.pth", seed=0))
    out = tmp_path / "e.parquet"
    settings = dict(model="efficientnet_lite0", weights=weights, verbose=0, batch_size=4)
    embed(folder, out, **settings)
    assert embed(folder, out, **settings, if_exists="reuse").up_to_date
    assert len(builds) == 1  # the rerun read the weights file's signature only

    before = os.stat(weights)
    _weights_file(weights, seed=1)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(weights).st_size == before.st_size
    with pytest.raises(FileExistsError, match=r"other settings \(weights: "):
        embed(folder, out, **settings, if_exists="reuse")

    # The same bytes written again: another signature, the same description.
    _weights_file(weights, seed=0)
    assert embed(folder, out, **settings, if_exists="reuse").up_to_date
    assert len(builds) == 3


def test_another_model_is_refused(folder, tmp_path):
    out = tmp_path / "e.parquet"
    embed(folder, out, **TINY)
    with pytest.raises(FileExistsError, match=r"other settings \(.*model: 'tiny_convnet' -> 'efficientnet_lite0'"):
        embed(folder, out, model="efficientnet_lite0", weights=None, verbose=0, if_exists="reuse")


def test_an_extractor_with_other_parameters_is_refused_both_ways(folder, tmp_path):
    with_request = tmp_path / "request.parquet"
    embed(folder, with_request, **TINY)
    with pytest.raises(FileExistsError, match=r"other settings \(.*tta: None -> 'flip'"):
        embed(folder, with_request, extractor=tiny(tta="flip"), verbose=0, if_exists="reuse")

    # A table an extractor wrote holds no request: the same arguments as a
    # request are compared in full.
    without_request = tmp_path / "extractor.parquet"
    embed(folder, without_request, extractor=tiny(tta="flip"), verbose=0)
    with pytest.raises(FileExistsError, match=r"other settings \(.*tta: 'flip' -> None"):
        embed(folder, without_request, **TINY, if_exists="reuse")


def test_other_images_are_refused(folder, tmp_path):
    out = tmp_path / "e.parquet"
    embed(folder, out, **TINY)
    os.rename(folder / "bees", folder / "wasps")  # the same files, other labels and paths
    with pytest.raises(FileExistsError, match="holds embeddings of other images"):
        embed(folder, out, **TINY, if_exists="reuse")


def test_the_request_key_names_the_weights_version_only_where_it_is_cheap_and_reproducible(tmp_path):
    assert _embed_existing.request_key("tiny_convnet", None, None)["weights_version"] == "seeded random"
    assert _embed_existing.request_key("efficientnet_lite0", None, None) is None  # unseeded random
    assert _embed_existing.request_key("resnet18", "IMAGENET1K_V1", None) is None  # downloaded
    assert _embed_existing.request_key("efficientnet_lite0", str(tmp_path / "absent.pth"), None) is None
    packaged = _embed_existing.request_key("efficientnet_lite0", "DEFAULT", None)
    if packaged is not None:  # the weights package is installed
        assert packaged["weights_version"]["DEFAULT"][0].endswith(".pth")
    assert _embed_existing.request_key("tiny_convnet", None, "stage2") != _embed_existing.request_key(
        "tiny_convnet", None, None
    )
