"""When to transfer: ImageNet features help on photos and hurt on 8x8 digits.
==========================================================================

``transfer_gain`` scores "efficientnet_lite0 embeddings + logistic regression"
against "logistic regression on the raw pixels" on the same folds, and flags
negative transfer when the pixels are significantly better. On scikit-learn's
8x8 digits the flag fires; on flower photos it does not.

Reuses the embeddings cached by ``benchmarks/domain_shift.py`` when present,
otherwise embeds a small subset (about a minute on a 2-core CPU). Photos come
from the ``flowers/`` folder that ``sktransfer.datasets.find_data_dir`` finds
(``$SKTRANSFER_DATA`` first); without them only the digits part runs. The plot goes to
``examples/output/domain_shift_when_to_transfer.png``.
Run: ``python examples/domain_shift_when_to_transfer.py``
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import RepeatedStratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sktransfer import PretrainedFeatureExtractor, transfer_gain  # noqa: E402
from sktransfer.datasets import find_data_dir, load_image_folder  # noqa: E402

# This example's folder: sphinx-gallery runs the examples from it and does not set __file__.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

REPO = HERE.parent
CACHE = REPO / "benchmarks" / ".cache"
OUTPUT = HERE / "output"


def model():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))


def digits_data(n=200):
    if (CACHE / "digits.npz").is_file():
        data = np.load(CACHE / "digits.npz")
        return data["X"], data["y"], data["pixels"]
    digits = load_digits()
    rows = np.random.default_rng(0).choice(len(digits.target), n, replace=False)
    # 8x8 greys in 0..16 -> 64x64 RGB uint8 images for the extractor.
    images = np.stack(
        [
            np.asarray(Image.fromarray(np.uint8(im / 16 * 255)).resize((64, 64)).convert("RGB"))
            for im in digits.images[rows]
        ]
    )
    return PretrainedFeatureExtractor().fit_transform(images), digits.target[rows], digits.data[rows]


def photo_data(per_class=40):
    if (CACHE / "flowers_clean.npz").is_file():
        data = np.load(CACHE / "flowers_clean.npz")
        return data["X"], data["y"], data["pixels"]
    home = find_data_dir("flowers")
    if home is None:
        print("flowers photos not found (set SKTRANSFER_DATA): skipping the photo part")
        return None
    paths, labels = load_image_folder(Path(home) / "flowers")
    paths = np.asarray(paths)
    rows = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    pixels = np.stack(
        [np.asarray(Image.open(p).convert("RGB").resize((24, 24)), dtype=np.float32).ravel() / 255 for p in paths[rows]]
    )
    return PretrainedFeatureExtractor().fit_transform(list(paths[rows])), labels[rows], pixels


results = {}
cv = RepeatedStratifiedKFold(n_splits=5, n_repeats=2, random_state=0)
X, y, pixels = digits_data()
results["8x8 digits"] = transfer_gain(model(), model(), X, y, X_baseline=pixels, cv=cv)
photos = photo_data()
if photos is not None:
    X, y, pixels = photos
    results["flower photos"] = transfer_gain(model(), model(), X, y, X_baseline=pixels, cv=cv)

fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
for ax, (name, result) in zip(axes[0], results.items()):
    print(f"{name}: {result}")
    ax.boxplot([result.transfer_scores, result.baseline_scores])
    ax.set_xticks([1, 2], ["ImageNet features", "raw pixels"])
    flag = "negative transfer" if result.negative_transfer else "no negative transfer"
    ax.set(title=f"{name}: gain {result.gain:+.3f} ({flag})", ylabel="fold accuracy")
fig.tight_layout()
OUTPUT.mkdir(exist_ok=True)
fig.savefig(OUTPUT / "domain_shift_when_to_transfer.png", dpi=100)
print(f"plot written to {OUTPUT / 'domain_shift_when_to_transfer.png'}")
