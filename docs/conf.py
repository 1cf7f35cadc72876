"""Sphinx configuration of the sktransfer documentation.

``make docs`` builds the site and runs every example of the gallery;
``make docs-ci`` (run by ``make test``) builds it with warnings as errors and
runs only the examples fast enough for CI (``plot_*.py``), rendering the
others without their output. The choice is the environment variable
``SKTRANSFER_DOCS_GALLERY`` (``all`` or ``fast``).
"""

import importlib
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import sktransfer  # noqa: E402

project = "sktransfer"
copyright = "2026, the sktransfer developers"
release = version = sktransfer.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_title = f"sktransfer {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False

# The API reference: one page per public name, no page per method (numpydoc
# lists the methods in each class page).
autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# No intersphinx: the build must work without a network (CI machines have
# none), so references to scikit-learn or Python stay plain text.

_GALLERY = os.environ.get("SKTRANSFER_DOCS_GALLERY", "all")
if _GALLERY not in ("all", "fast"):
    raise ValueError(f"SKTRANSFER_DOCS_GALLERY must be 'all' or 'fast', got {_GALLERY!r}")

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # "fast": only plot_*.py examples run (seconds each); the others are
    # rendered with their code and without output.
    "filename_pattern": r"/plot_" if _GALLERY == "fast" else r".*",
    "ignore_pattern": r"/_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "plot_gallery": "True",
    # Every example runs; the build then fails listing each one that raised.
    "abort_on_example_error": False,
}


# The API reference lists each subpackage's public names from its __all__,
# so a new public name appears without editing a second list.
API_SUBPACKAGES = {
    "sktransfer.feature_extraction": "Feature extraction: images in, embeddings out",
    "sktransfer.finetune": "Fine-tuning",
    "sktransfer.inspection": "Diagnostic plots",
    "sktransfer.shift": "Domain shift and when to transfer",
    "sktransfer.selection": "Choosing what to transfer",
    "sktransfer.storage": "Keeping embeddings",
    "sktransfer.parallel": "Many processes: dask and Ray",
    "sktransfer.datasets": "Data sets and image folders",
    "sktransfer.image": "Reading images",
    "sktransfer.backbones": "Backbones",
    "sktransfer.utils": "Utilities",
}


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn's metadata-routing setters (set_fit_request...) are made
    # per class; their docstrings point into scikit-learn's own docs.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)


def _write_api_page() -> None:
    lines = [
        ".. This file is written by conf.py from each subpackage's __all__; do not edit.",
        "",
        "API reference",
        "=============",
        "",
        "The most used names are also importable from ``sktransfer`` itself",
        "(``from sktransfer import PretrainedFeatureExtractor``).",
        "",
    ]
    for package, title in API_SUBPACKAGES.items():
        module = importlib.import_module(package)
        names = sorted(name for name in module.__all__ if not name.isupper())
        lines += [
            f"``{package}``: {title}",
            "-" * (len(package) + 6 + len(title)),
            "",
            f".. automodule:: {package}",
            "   :no-members:",
            "   :no-index:",
            "",
            f".. currentmodule:: {package}",
            "",
            ".. autosummary::",
            "   :toctree: generated/",
            "   :nosignatures:",
            "",
            *(f"   {name}" for name in names),
            "",
        ]
    text = "\n".join(lines)
    path = DOCS / "api.rst"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


_write_api_page()
