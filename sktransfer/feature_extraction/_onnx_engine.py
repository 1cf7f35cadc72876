"""ONNX Runtime as an inference engine for the feature extractor.

On small CPUs PyTorch eager is not the fastest way to run a fixed network:
ONNX Runtime fuses convolutions with batch norms and activations and picks
better kernels. The embedder (uint8 in, features out) is exported once with
the TorchScript-based exporter; for reproducible weights the graph is cached
on disk, keyed by model, weights, layer, pooling, input size and versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

OPSET = 17


def onnxruntime_available():
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def cache_dir():
    """Where exported graphs are kept: ``$SKTRANSFER_CACHE`` or ``~/.cache/sktransfer``."""
    root = os.environ.get("SKTRANSFER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sktransfer")
    return Path(root) / "onnx"


def _export(embedder, crop, path):
    example = torch.zeros(2, 3, crop, crop, dtype=torch.uint8)
    import warnings

    with warnings.catch_warnings():
        # Tracing warns about shape-dependent Python code (e.g. padding
        # computed from the input size); the input size is fixed here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            embedder.cpu().eval(),
            (example,),
            str(path),
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


class OnnxRunner:
    """Run an exported embedder with ONNX Runtime on the CPU.

    Parameters
    ----------
    embedder : Embedder
    cache_key : str or None
        None exports to a temporary file that is deleted after loading.
    """

    _lock = threading.Lock()

    def __init__(self, embedder, cache_key):
        import onnxruntime as ort

        crop = embedder.backbone.preprocessing.crop_size
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        # Decoding threads run beside the network: idle ORT workers must
        # sleep, not spin, or they take the cores the decoders need
        # (+15% images/s on 2 cores, benchmarks/RESULTS.md).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if cache_key is None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "embedder.onnx"
                _export(embedder, crop, path)
                self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        else:
            digest = hashlib.sha256(
                f"{cache_key}|torch={torch.__version__}|opset={OPSET}".encode()
            ).hexdigest()[:24]
            path = cache_dir() / f"{digest}.onnx"
            with self._lock:
                if not path.is_file():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    _export(embedder, crop, tmp)
                    os.replace(tmp, path)  # atomic: concurrent readers never see half a file
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, batch):
        arr = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        return self.session.run(None, {"images": np.ascontiguousarray(arr, dtype=np.uint8)})[0].astype(np.float32)
