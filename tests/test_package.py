"""The package layout: lazy public names, light subpackages."""

import subprocess
import sys

import pytest

import sktransfer


def _imported_after(statement):
    code = f"import sys; {statement}; print(sorted(m for m in ('torch', 'skorch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize(
    "statement",
    [
        "import sktransfer",
        "import sktransfer.shift",
        "from sktransfer import CORAL, transfer_gain, detect_shift",
        "from sktransfer.shift import LabelShiftAdapter, ResampledClassifier",
        "from sktransfer.image import load_image, check_images",
        "import sktransfer.datasets",
        "from sktransfer.parallel import dask_transform, RayEmbedder, worker_thread_budget",
    ],
)
def test_light_imports_need_neither_torch_nor_skorch(statement):
    assert _imported_after(statement) == "[]"


def test_estimators_import_torch_when_used():
    assert _imported_after("from sktransfer import FineTuneClassifier") == "['skorch', 'torch']"


@pytest.mark.parametrize("name", sorted(set(sktransfer.__all__) - {"__version__"}))
def test_every_public_name_resolves_to_its_subpackage(name):
    value = getattr(sktransfer, name)
    assert value.__module__.startswith("sktransfer.")
    assert name in dir(sktransfer)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        sktransfer.Nope  # noqa: B018
