"""Which backbone and layer to transfer? Rank them before training anything.
=========================================================================

Ants vs bees (the PyTorch tutorial's hymenoptera photos): nine candidate
extractors (EfficientNet-Lite0/1/2 x their last three layer groups) are
ranked on the 244 training photos by ``rank_transfer`` (LogME, k-NN and a
cross-validated linear probe, all from features extracted once per
network); then each candidate is actually evaluated: LogisticRegression
trained on the training photos, accuracy on the 153 validation photos.

The plot shows each score against that held-out accuracy, with Kendall's
tau in the titles: a good score puts the candidates in the order of the
accuracy they really reach.

Output: ``examples/output/rank_backbones.png``. A few minutes on a 2-core
CPU (three networks over 397 photos).
Run: ``python examples/rank_backbones.py``
Data: ``fetch_hymenoptera`` finds ``hymenoptera/`` in ``$SKTRANSFER_DATA``,
``~/sktransfer_data`` or ``../shared/data`` (or downloads it).
"""

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sktransfer import PretrainedFeatureExtractor  # noqa: E402
from sktransfer.datasets import fetch_hymenoptera  # noqa: E402
from sktransfer.selection import rank_transfer  # noqa: E402

# This example's folder: sphinx-gallery runs the examples from it and does not set __file__.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

OUTPUT = HERE / "output"
BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
LAYERS = ("stage6", "stage7", None)  # None: the network's own embedding
SCORES = ("logme", "knn", "linear")


def main():
    # The same folders as every example: $SKTRANSFER_DATA, ~/sktransfer_data,
    # ../shared/data beside a checkout (downloaded when absent and online).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the data set's .gif placeholder is skipped
        X_train, y_train = fetch_hymenoptera(subset="train", return_X_y=True)
        X_val, y_val = fetch_hymenoptera(subset="val", return_X_y=True)

    candidates = {
        f"{b.replace('efficientnet_', '')}/{layer or 'embedding'}": PretrainedFeatureExtractor(model=b, layer=layer)
        for b in BACKBONES
        for layer in LAYERS
    }
    table = rank_transfer(candidates, X_train, y_train, scores=SCORES, random_state=0, return_timings=True, verbose=1)
    print(table[list(SCORES) + ["extract_s"]].round(3).to_string())

    # The truth the scores try to predict: accuracy on photos nobody scored.
    # One multi-layer extractor per network embeds the photos once; its
    # columns are the three layers' pooled features side by side ("head_conv"
    # pooled by average is the network's own embedding).
    for b in BACKBONES:
        short = b.replace("efficientnet_", "")
        names = [f"{short}/{layer or 'embedding'}" for layer in LAYERS]
        multi = PretrainedFeatureExtractor(model=b, layer=["stage6", "stage7", "head_conv"]).fit(X_train)
        F_train, F_val = multi.transform(X_train), multi.transform(X_val)
        bounds = np.cumsum([0] + [int(table.loc[n, "n_features"]) for n in names])
        for name, start, stop in zip(names, bounds[:-1], bounds[1:]):
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            model.fit(F_train[:, start:stop], y_train)
            table.loc[name, "held-out accuracy"] = model.score(F_val[:, start:stop], y_val)
    print(table[["held-out accuracy"]].round(3).to_string())

    fig, axes = plt.subplots(1, len(SCORES), figsize=(4.2 * len(SCORES), 4), sharey=True)
    for ax, score in zip(axes, SCORES):
        tau = kendalltau(table[score], table["held-out accuracy"]).statistic
        for b, marker in zip(BACKBONES, "os^"):
            rows = table[table.index.str.startswith(b.replace("efficientnet_", ""))]
            ax.scatter(rows[score], rows["held-out accuracy"], marker=marker, label=b)
        ax.set_title(f"{score}: Kendall tau = {tau:.2f}")
        ax.set_xlabel(f"{score} (training photos only)")
    axes[0].set_ylabel("held-out accuracy (val)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Ranking candidate extractors before training (ants vs bees)")
    fig.tight_layout()
    OUTPUT.mkdir(exist_ok=True)
    fig.savefig(OUTPUT / "rank_backbones.png", dpi=110)
    print(f"saved {OUTPUT / 'rank_backbones.png'}")


if __name__ == "__main__":
    main()
