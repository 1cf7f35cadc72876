"""An extractor stand-in that answers zeros at once: what a pipeline costs without the network.

Run through the same pipeline as the real extractor (a process pool, or
``dask_transform`` gathered and written to Parquet), it measures the
pipeline's own fixed cost: scheduling, serialisation, the Parquet writer,
gathering. It lives in a module of its own so that worker processes can
import it by name.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

WIDTH = 1280  # EfficientNet-Lite0's


class ZeroExtractor(TransformerMixin, BaseEstimator):
    n_features_out_ = WIDTH

    def fit(self, X=None, y=None):
        return self

    def transform(self, X):
        return np.zeros((len(X), WIDTH), np.float32)

    def get_feature_names_out(self, input_features=None):
        return np.array([f"f{i}" for i in range(WIDTH)], dtype=object)
