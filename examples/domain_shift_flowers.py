"""Label shift and a "different sensor" on real flower-photo embeddings.
=====================================================================

Uses the efficientnet_lite0 embeddings cached by ``benchmarks/domain_shift.py``
(run it once first: it embeds 800 photos, a few minutes on a 2-core CPU).

Left plot: class priors of a target where daisies are 70% of the photos, as
estimated by ``LabelShiftAdapter``. Right plot: accuracy on greyscale, dark,
blurred target photos with no correction and with CORAL.
Output: ``examples/output/domain_shift_flowers.png``.
Run: ``python examples/domain_shift_flowers.py``
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sktransfer import CORAL, LabelShiftAdapter, detect_shift  # noqa: E402

CACHE = Path(__file__).resolve().parents[1] / "benchmarks" / ".cache"
OUTPUT = Path(__file__).resolve().parent / "output"
if not (CACHE / "flowers_sensor.npz").is_file():
    sys.exit("No cached embeddings: run `python benchmarks/domain_shift.py` first.")

clean, sensor = np.load(CACHE / "flowers_clean.npz"), np.load(CACHE / "flowers_sensor.npz")
X, y = clean["X"], clean["y"]
classes = np.unique(y)
rng = np.random.default_rng(0)
train = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:60] for c in classes])
held_out = np.setdiff1d(np.arange(len(y)), np.union1d(train, sensor["rows"]))


def model():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))


# Label shift: 70% daisies, the other four classes 7.5% each.
daisies = held_out[y[held_out] == classes[0]]
others = [held_out[y[held_out] == c][: int(len(daisies) * 0.075 / 0.7)] for c in classes[1:]]
target = np.concatenate([daisies, *others])
adapter = LabelShiftAdapter(model()).fit(X[train], y[train]).fit_target(X[target])
true_priors = np.array([np.mean(y[target] == c) for c in classes])

# A different sensor: the same kind of photos, greyscale, darker and blurred.
X_sensor, y_sensor = sensor["X"], y[sensor["rows"]]
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
