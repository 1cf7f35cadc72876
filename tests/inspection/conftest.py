"""Fixtures of the display tests: the Agg backend, tiny images, tiny fitted estimators."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

TINY = dict(model="tiny_convnet", weights=None, batch_size=4, num_workers=0, device="cpu")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def images_and_labels():
    """Twelve 24x24 RGB images, two classes, the second brighter."""
    rng = np.random.default_rng(0)
    y = np.array(["ant", "bee"] * 6, dtype=object)
    X = rng.integers(0, 150, size=(12, 24, 24, 3), dtype=np.uint8)
    X[y == "bee"] += np.uint8(100)
    return X, y


@pytest.fixture(scope="module")
def fitted_fine_tuner(images_and_labels):
    from skorch.dataset import ValidSplit

    from sktransfer import FineTuneClassifier

    X, y = images_and_labels
    clf = FineTuneClassifier(
        **TINY, max_epochs=2, head_epochs=1, verbose=0, random_state=0, train_split=ValidSplit(3, stratified=True)
    )
    return clf.fit(X, y)
