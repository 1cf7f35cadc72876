"""PyTorch as an inference engine for the feature extractor.

Every engine is a callable taking a uint8 NCHW batch (a tensor) and
returning float32 features as a numpy array; the extractor builds one in
``fit`` and shares it between threads, so calling it must not change it.
"""

from __future__ import annotations

import torch

from ..utils._device import autocast_context


class TorchRunner:
    """Run an embedder with PyTorch in inference mode.

    Parameters
    ----------
    embedder : Embedder
        Moved to ``device`` (in place) and put in eval mode.
    device : torch.device
    precision : {"float32", "float16", "bfloat16"}
        Below float32, the forward pass runs under autocast.
    """

    def __init__(self, embedder, device, precision):
        self.embedder = embedder.to(device).eval()
        self.device = device
        self.precision = precision
        # Convolutions run faster on NHWC tensors: cuDNN's tensor-core
        # kernels on a GPU, oneDNN's on a CPU (most of all for depthwise and
        # 1x1 convolutions). The memory format changes no result beyond
        # rounding: every op keeps its logical NCHW meaning.
        self.channels_last = device.type in ("cuda", "cpu")
        if self.channels_last:
            self.embedder.to(memory_format=torch.channels_last)

    def __call__(self, batch):
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast_context(self.device, self.precision):
            feats = self.embedder(batch)
        return feats.float().cpu().numpy()
