"""Domain-shift helpers on synthetic data: a two-minute tour with plots.
=====================================================================

1. Covariate shift: importance weights of a domain classifier against the true
   density ratio of two Gaussians, and importance-weighted training.
2. Label shift: target class priors recovered by ``LabelShiftAdapter``.
3. Shift detection on shifted and unshifted data.

Plots are written to ``examples/output/domain_shift_synthetic.png``.
Run: ``python examples/domain_shift_synthetic.py``
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sktransfer import (  # noqa: E402
    DomainClassifierWeighter,
    LabelShiftAdapter,
    detect_shift,
)

# This example's folder: sphinx-gallery runs the examples from it and does not set __file__.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUTPUT = HERE / "output"
rng = np.random.default_rng(0)

# 1. Covariate shift: source N(0, 1), target N(1, 1); p_t/p_s = exp(x - 1/2).
X_source = rng.normal(0.0, 1.0, (3000, 1))
X_target = rng.normal(1.0, 1.0, (1000, 1))
weighter = DomainClassifierWeighter(normalize=False, random_state=0).fit(X_source, X_target)
grid = np.linspace(-2.5, 3.0, 200)[:, None]
print(f"domain AUC: {weighter.domain_auc_:.3f} (0.5 = same, 1.0 = disjoint)")

# 2. Label shift: three classes, balanced source, target priors 0.7/0.2/0.1.
centers = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
y_source = np.repeat([0, 1, 2], 500)
y_target = rng.choice(3, size=2000, p=[0.7, 0.2, 0.1])
adapter = LabelShiftAdapter().fit(centers[y_source] + rng.normal(size=(1500, 2)), y_source)
adapter.fit_target(centers[y_target] + rng.normal(size=(2000, 2)))
true_priors = np.bincount(y_target) / len(y_target)
print("target priors, true:", true_priors.round(3), "estimated:", adapter.target_priors_.round(3))

# 3. Shift detection: the same law versus a 0.5-sd mean shift in 2 of 8 features.
X_ref, X_same, X_moved = (rng.normal(size=(300, 8)) for _ in range(3))
X_moved[:, :2] += 0.5
for method in ("mmd", "ks", "classifier"):
    print("no shift:", detect_shift(X_ref, X_same, method, random_state=0))
    print("shifted: ", detect_shift(X_ref, X_moved, method, random_state=0))

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.plot(grid[:, 0], np.exp(grid[:, 0] - 0.5), "k--", label="true p_t(x) / p_s(x)")
left.plot(grid[:, 0], weighter.compute_weights(grid), label="DomainClassifierWeighter")
left.set(xlabel="x", ylabel="importance weight", yscale="log", title="Covariate shift")
left.legend()
positions = np.arange(3)
right.bar(positions - 0.2, adapter.source_priors_, 0.2, label="source")
right.bar(positions, true_priors, 0.2, label="target (true)")
right.bar(positions + 0.2, adapter.target_priors_, 0.2, label="target (EM + BCTS)")
right.set(xticks=positions, xlabel="class", ylabel="prior", title="Label shift")
right.legend()
fig.tight_layout()
OUTPUT.mkdir(exist_ok=True)
fig.savefig(OUTPUT / "domain_shift_synthetic.png", dpi=100)
print(f"plot written to {OUTPUT / 'domain_shift_synthetic.png'}")
