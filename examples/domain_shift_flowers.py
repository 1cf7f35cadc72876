"""Label shift and a "different sensor" on real flower-photo embeddings.
=====================================================================

800 photos of the flowers data set (160 per class) are embedded by
EfficientNet-Lite0, and 300 of them again after a "sensor change"
(greyscale, darker, blurred): a few minutes on a 2-core CPU the first time;
the embeddings are kept in an embedding store (``examples/output/store``),
so a rerun takes seconds.

Left plot: class priors of a target where daisies are 70% of the photos, as
estimated by ``LabelShiftAdapter``. Right plot: accuracy on greyscale, dark,
blurred target photos with no correction and with CORAL.
Output: ``examples/output/domain_shift_flowers.png``.
Run: ``python examples/domain_shift_flowers.py``
Data: ``flowers/`` in the folder ``sktransfer.datasets.find_data_dir`` finds
(``$SKTRANSFER_DATA``, ``~/sktransfer_data``, or ``../shared/data`` beside a
checkout).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import ImageEnhance, ImageFilter  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sktransfer import CORAL, LabelShiftAdapter, PretrainedFeatureExtractor, detect_shift, load_image  # noqa: E402
from sktransfer.datasets import find_data_dir, load_image_folder  # noqa: E402

# This example's folder: sphinx-gallery runs the examples from it and does not set __file__.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

OUTPUT = HERE / "output"
PER_CLASS, TRAIN_PER_CLASS, SENSOR_PER_CLASS = 160, 60, 60


def sensor_change(image):
    """A different camera: greyscale, half the brightness, a little blur."""
    grey = image.convert("L").convert("RGB")
    return ImageEnhance.Brightness(grey).enhance(0.5).filter(ImageFilter.GaussianBlur(radius=2))


paths, labels = load_image_folder(Path(find_data_dir("flowers", required=True)) / "flowers")
rng = np.random.default_rng(0)
chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:PER_CLASS] for c in np.unique(labels)])
paths, y = [paths[i] for i in chosen], labels[chosen]
classes = np.unique(y)
# Per class, in the drawn order: training photos, then the sensor's, then held out.
rank = np.concatenate([np.arange(PER_CLASS) for _ in classes])
train = np.flatnonzero(rank < TRAIN_PER_CLASS)
sensor_rows = np.flatnonzero((rank >= TRAIN_PER_CLASS) & (rank < TRAIN_PER_CLASS + SENSOR_PER_CLASS))
held_out = np.flatnonzero(rank >= TRAIN_PER_CLASS + SENSOR_PER_CLASS)

extractor = PretrainedFeatureExtractor(model="efficientnet_lite0", cache=OUTPUT / "store").fit(paths[:1])
X = extractor.transform(paths)
X_sensor = extractor.transform([sensor_change(load_image(paths[i])) for i in sensor_rows])


def model():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))


# Label shift: 70% daisies, the other four classes 7.5% each.
daisies = held_out[y[held_out] == classes[0]]
others = [held_out[y[held_out] == c][: int(len(daisies) * 0.075 / 0.7)] for c in classes[1:]]
target = np.concatenate([daisies, *others])
adapter = LabelShiftAdapter(model()).fit(X[train], y[train]).fit_target(X[target])
true_priors = np.array([np.mean(y[target] == c) for c in classes])

# A different sensor: the same kind of photos, greyscale, darker and blurred.
y_sensor = y[sensor_rows]
print(detect_shift(X[train], X_sensor, "mmd", random_state=0))
plain = model().fit(X[train], y[train])
coral = make_pipeline(CORAL(), *model().named_steps.values())
coral.fit(X[train], y[train], coral__X_target=X_sensor)
accuracies = {
    "clean photos": plain.score(X[held_out], y[held_out]),
    "sensor, none": plain.score(X_sensor, y_sensor),
    "sensor, CORAL": coral.score(X_sensor, y_sensor),
}
print({name: round(value, 3) for name, value in accuracies.items()})

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
positions = np.arange(len(classes))
left.bar(positions - 0.2, adapter.source_priors_, 0.2, label="training")
left.bar(positions, true_priors, 0.2, label="target (true)")
left.bar(positions + 0.2, adapter.target_priors_, 0.2, label="target (EM + BCTS)")
left.set(xticks=positions, ylabel="class prior", title="Label shift: 70% daisies")
left.set_xticklabels(classes)
left.legend()
right.bar(list(accuracies), list(accuracies.values()), color=["grey", "tab:red", "tab:green"])
right.set(ylabel="accuracy", ylim=(0, 1), title="Different sensor (covariate shift)")
fig.tight_layout()
OUTPUT.mkdir(exist_ok=True)
fig.savefig(OUTPUT / "domain_shift_flowers.png", dpi=100)
print(f"plot written to {OUTPUT / 'domain_shift_flowers.png'}")
