"""Features of several extractors of one network from a single forward pass.

Candidates that differ only in ``layer`` and ``pooling`` run the same
network on the same preprocessed images: decoding the images and running
the trunk once, and pooling every requested group's output, gives all their
features for the cost of one extraction. The source classifier's
probabilities (for LEEP and NCE) come from the same pass.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import clone
from torch import nn

from .. import runtime
from ..feature_extraction import PretrainedFeatureExtractor, global_pool
from ..feature_extraction._embedder import default_pooling
from ..image import BatchDecoder, resolve_num_workers, validate_images
from ..utils import resolve_device

# Parameters that only choose what is read off the pass.
_READOUT_PARAMS = ("layer", "pooling")


def shared_pass_key(extractor):
    """A key (str) equal for extractors that can share a pass, or None.

    Only extractors of a named network whose ``layer`` is None or a
    layer-group name qualify (other layers need forward hooks); the group
    names are checked once the network is built.
    """
    if type(extractor) is not PretrainedFeatureExtractor or not isinstance(extractor.model, str):
        return None
    if not (extractor.layer is None or isinstance(extractor.layer, str)):
        return None
    params = {k: repr(v) for k, v in extractor.get_params(deep=False).items() if k not in _READOUT_PARAMS}
    # The runtime's description of the pass, without its readout; the
    # decoding settings (batch size, workers, ...) stay in: the carrier uses them.
    description = runtime.describe_output(
        model=params.pop("model"),
        weights=params.pop("weights"),
        readout={"tta": params.pop("tta")},
        engine=params.pop("engine"),
        device=params.pop("device"),
        precision=params.pop("precision"),
        **params,
    )
    return runtime.output_key(description)


def reads_source_head(extractor):
    """Whether the extractor's features are the input of the network's own classifier."""
    return extractor.layer is None and extractor.pooling is None


class _MultiReadout(nn.Module):
    """uint8 images -> every candidate's features and the source probabilities, concatenated."""

    def __init__(self, backbone, readouts, with_source, tta=None):
        super().__init__()
        self.backbone = backbone
        self.tta = tta
        self.readouts = readouts  # list of (layer or None, pooling or None)
        self.with_source = with_source
        names = backbone.group_names
        wanted = [names[-1] if layer in (None, "pre_logits") else layer for layer, _ in readouts]
        self.stop = max(names.index(w) for w in wanted)
        if with_source:
            self.stop = len(names) - 1

    def forward(self, batch):
        return torch.cat([p.float() for p in self.parts(batch)], dim=1)

    def parts(self, batch):
        """Each readout's features, then the source probabilities, as a list."""
        x = self.backbone.preprocessing.normalize(batch)
        if self.tta == "flip":
            # As the extractor's flip: image and mirror in one batch, averaged.
            both = self._parts(torch.cat([x, x.flip(-1)]))
            return [p.reshape(2, -1, p.shape[1]).mean(0) for p in both]
        return self._parts(x)

    def _parts(self, x):
        bb = self.backbone
        if bb.input_transform is not None:
            x = bb.input_transform(x)
        outputs = {}
        for name in bb.group_names[: self.stop + 1]:
            x = bb.groups[name](x)
            outputs[name] = x
        last = bb.group_names[-1]
        parts, embedding = [], None
        for layer, pooling in self.readouts:
            if layer in (None, "pre_logits") and pooling is None:
                embedding = bb.pre_logits(bb.pool(outputs[last])) if embedding is None else embedding
                parts.append(embedding)
                continue
            group = last if layer in (None, "pre_logits") else layer
            fmt = bb.group_formats[group]
            parts.append(global_pool(outputs[group], pooling or default_pooling(fmt), fmt))
        if self.with_source:
            if embedding is None:
                embedding = bb.pre_logits(bb.pool(outputs[last]))
            parts.append(torch.softmax(bb.head(embedding).float(), dim=1))
        return parts


def extract_shared(extractors, X, *, with_source):
    """Features of each extractor (same network, any layer-group / pooling) in one pass.

    Parameters
    ----------
    extractors : list of PretrainedFeatureExtractor
        Equal :func:`shared_pass_key`; they are cloned, not changed.
    X : images
    with_source : bool
        Also return the source classifier's class probabilities (needs the
        network's head).

    Returns
    -------
    features : list of ndarray, one per extractor
    source_proba : ndarray of shape (n_samples, n_source_classes) or None
    """
    # One clone is fitted to build the network and validate X (engine="torch":
    # its own graph is never run, so it must not be exported); the combined
    # readout then runs on the images decoded as the extractor decodes them.
    requested = extractors[0]
    carrier = clone(requested).set_params(layer=None, pooling=None, engine="torch").fit(X)
    backbone = carrier.backbone_
    for ext in extractors:
        if ext.layer not in (None, "pre_logits") and ext.layer not in backbone.group_names:
            raise ValueError(f"layer={ext.layer!r} is not a layer group of {backbone.name} ({backbone.layer_groups})")
    with_source = with_source and backbone.head is not None
    readouts = [(e.layer, e.pooling) for e in extractors]
    readout = _MultiReadout(backbone, readouts, with_source, getattr(requested, "tta", None)).eval()
    crop = backbone.preprocessing.crop_size
    with torch.inference_mode():
        widths = [int(p.shape[1]) for p in readout.parts(torch.zeros(1, 3, crop, crop, dtype=torch.uint8))]
    combined = _run_readout(requested, carrier, readout, X, sum(widths))
    features, start = [], 0
    for width in widths[: len(extractors)]:
        features.append(combined[:, start : start + width])
        start += width
    source = combined[:, start:] if with_source else None
    return features[: len(extractors)], source


def _run_readout(requested, carrier, readout, X, n_features):
    """The combined readout of every image of ``X``, decoded as ``requested`` decodes; NaN rows where unreadable."""
    device = resolve_device(requested.device)
    preprocessing = carrier.backbone_.preprocessing
    transform = preprocessing.pil_transform()
    runner = _runner(requested, carrier, readout)
    items = validate_images(carrier, X, reset=False)
    batch_size = runtime.inference_batch_size(requested.batch_size, device)
    decoder = BatchDecoder(
        items,
        transform,
        batch_size=batch_size,
        num_workers=resolve_num_workers(requested.num_workers),
        on_error=requested.on_error,
        draft_size=transform.draft_size,
    )
    combined = np.empty((len(items), n_features), np.float32)
    for start, batch, failures in decoder:
        if batch is not None:
            combined[start : start + len(batch)] = np.concatenate(runner(batch), axis=1)
        for index, _ in failures:
            combined[index] = np.nan
    return combined


def _runner(requested, extractor, readout):
    device = resolve_device(extractor.device)
    # The extractor's own choice among the engines (OpenVINO first on a CPU
    # under "auto"), at float32 for int8 requests: a calibration belongs to
    # one graph, and the combined readout is another.
    precision = extractor.output_description()["precision"]  # what the carrier really runs
    precision = precision if precision in ("float16", "bfloat16") else "float32"
    engine = runtime.select_engine(requested.engine, device, exportable=True, precision=precision)
    # description=None: the readout combination is particular to this call,
    # so its graph is not cached on disk.
    crop = extractor.backbone_.preprocessing.crop_size
    return runtime.make_runner(engine, readout, device=device, crop=crop, precision=precision)


def source_probabilities(extractor, embedding):
    """Softmax of a fitted extractor's ImageNet classifier on its embedding."""
    head = extractor.backbone_.head
    if head is None:
        raise ValueError(f"{extractor.backbone_.name} has no source classifier: leep/nce cannot be computed")
    param = next(head.parameters())
    with torch.inference_mode():
        logits = head(torch.as_tensor(embedding, dtype=param.dtype, device=param.device))
    return torch.softmax(logits.float(), dim=1).cpu().numpy()
