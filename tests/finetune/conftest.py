"""Fixtures of the fine-tuning tests (see tiny_finetune.py)."""

import pytest
from tiny_finetune import make_clf, make_data, make_tiny_backbone


@pytest.fixture(scope="module")
def tiny_backbone():
    return make_tiny_backbone()


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def fitted(tiny_backbone, data):
    X, y = data
    return make_clf(tiny_backbone, max_epochs=2).fit(X, y)
