"""Bad inputs and faults of feature extraction, one row each.

Each row is (id, fault, expected): ``fault(ctx)`` sets the fault up and runs
the code under test; ``expected`` is either ``Raises(type, fragment)`` or a
``Policy(check)`` whose ``check(ctx, result)`` asserts the documented
behaviour (a warning, a fallback, equal results).
"""

import os
import pickle
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from _catalogue import Policy, Raises, check_row
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import InvalidParameterError

from sktransfer import ImageLoadError, PretrainedFeatureExtractor
from sktransfer.backbones import get_backbone
from sktransfer.backbones._efficientnet_lite import build_efficientnet_lite
from sktransfer.backbones._weights import weights_identity
from sktransfer.runtime import _graphs

# On the CPU, where every engine and precision row applies (a GPU machine too).
TINY = dict(model="tiny_convnet", weights=None, batch_size=4, num_workers=0, device="cpu")


@dataclass
class Ctx:
    tmp: object
    monkeypatch: object
    images: list
    marker: object = None
    caught: list = field(default_factory=list)


class Payload:
    """Unpickling this runs a shell command that creates ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def malicious_bytes(ctx):
    ctx.marker = ctx.tmp / "PWNED"
    import io

    buffer = io.BytesIO()
    torch.save({"weight": Payload(ctx.marker)}, buffer)
    return buffer.getvalue()


def lite0_file(path):
    torch.manual_seed(0)
    model = build_efficientnet_lite("efficientnet_lite0")
    torch.save(model.state_dict(), path)
    return model


def use_cache(ctx, folder=None):
    folder = folder if folder is not None else ctx.tmp / "cache"
    ctx.monkeypatch.setenv("SKTRANSFER_CACHE", str(folder))
    return folder


def fit_onnx(ctx, **params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = PretrainedFeatureExtractor(**{**TINY, "engine": "onnxruntime", **params}).fit(ctx.images)
    ctx.caught.extend(str(w.message) for w in caught)
    return est


def torch_reference(ctx):
    return PretrainedFeatureExtractor(**{**TINY, "engine": "torch"}).fit(ctx.images).transform(ctx.images)


def graph_entries(folder):
    return sorted((folder / "onnx").glob("*.onnx"))


# ------------------------------------------------------------------ faults


def corrupt_entry(how):
    def fault(ctx):
        folder = use_cache(ctx)
        fit_onnx(ctx)
        (entry,) = graph_entries(folder)
        data = bytearray(entry.read_bytes())
        if how == "truncate":
            data = data[: len(data) // 2]
        else:  # flip bytes inside the weights, where the graph still parses
            for i in range(len(data) - 400, len(data) - 300):
                data[i] ^= 0x5A
        entry.write_bytes(bytes(data))
        ctx.caught.clear()
        return fit_onnx(ctx).transform(ctx.images)

    return fault


def rebuilt_with_warning(ctx, out):
    assert any("is corrupt" in m for m in ctx.caught), ctx.caught
    np.testing.assert_allclose(out, torch_reference(ctx), atol=1e-4, rtol=1e-4)
    (entry,) = graph_entries(ctx.tmp / "cache")  # the bad entry was replaced
    assert entry.name.endswith(f"-{__import__('hashlib').sha256(entry.read_bytes()).hexdigest()}.onnx")


def read_only_cache(ctx):
    folder = use_cache(ctx)
    (folder / "onnx").mkdir(parents=True)
    os.chmod(folder / "onnx", 0o555)
    if os.access(folder / "onnx", os.W_OK):  # root writes anyway: refuse the rename as a read-only fs would

        def refuse(*args, **kwargs):
            raise OSError(30, "Read-only file system")

        ctx.monkeypatch.setattr(_graphs.os, "replace", refuse)
    ctx.caught.clear()
    outs = [fit_onnx(ctx).transform(ctx.images) for _ in range(2)]
    return outs


def cache_writable_by_others(ctx):
    # Found by the red team: a graph planted in a shared cache folder was
    # loaded by both graph engines (the name's checksum proves integrity,
    # not authorship).
    folder = use_cache(ctx)
    (folder / "onnx").mkdir(parents=True)
    os.chmod(folder, 0o777)
    ctx.caught.clear()
    return [fit_onnx(ctx).transform(ctx.images) for _ in range(2)], folder


def cache_of_another_user(ctx):
    if os.getuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    folder = use_cache(ctx)
    (folder / "onnx").mkdir(parents=True, mode=0o700)
    os.chown(folder / "onnx", 65534, 65534)
    ctx.caught.clear()
    return [fit_onnx(ctx).transform(ctx.images) for _ in range(2)], folder


def untrusted_cache_unused(reason):
    def check(ctx, result):
        outs, folder = result
        warned = [m for m in ctx.caught if "is not used" in m and reason in m]
        assert len(warned) == 1, ctx.caught
        assert graph_entries(folder) == []  # nothing read from or written to it
        for out in outs:
            np.testing.assert_allclose(out, torch_reference(ctx), atol=1e-4, rtol=1e-4)

    return check


def fresh_cache_folders(ctx):
    folder = use_cache(ctx, ctx.tmp / "new" / "cache")
    fit_onnx(ctx)
    return folder


def created_private(ctx, folder):
    assert len(graph_entries(folder)) == 1
    for created in (folder, folder / "onnx"):
        assert os.stat(created).st_mode & 0o777 == 0o700, oct(os.stat(created).st_mode)


def cache_path_is_a_file(ctx):
    blocker = ctx.tmp / "cache_file"
    blocker.write_text("not a folder")
    use_cache(ctx, blocker)
    return [fit_onnx(ctx).transform(ctx.images) for _ in range(2)]


def in_memory_with_one_warning(ctx, outs):
    warned = [m for m in ctx.caught if "cannot use the graph cache folder" in m]
    assert len(warned) == 1, ctx.caught
    reference = torch_reference(ctx)
    for out in outs:
        np.testing.assert_allclose(out, reference, atol=1e-4, rtol=1e-4)


def cache_deleted_after_fit(ctx):
    import shutil

    folder = use_cache(ctx)
    est = fit_onnx(ctx)
    shutil.rmtree(folder)
    out = est.transform(ctx.images)
    fit_onnx(ctx)  # a new fit exports again
    return out, graph_entries(folder)


def still_works_and_refills(ctx, result):
    out, entries = result
    np.testing.assert_allclose(out, torch_reference(ctx), atol=1e-4, rtol=1e-4)
    assert len(entries) == 1


def weights_rewritten_same_size_and_mtime(ctx):
    path = ctx.tmp / "w.pth"
    lite0_file(path)
    st = os.stat(path)
    before = weights_identity("efficientnet_lite0", str(path))
    state = torch.load(path, weights_only=True)
    state["conv_stem.weight"] = state["conv_stem.weight"] + 1.0
    torch.save(state, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = weights_identity("efficientnet_lite0", str(path))
    return before, after, os.stat(path)


def identities_differ(ctx, result):
    before, after, st = result
    assert before != after and before.startswith("efficientnet_lite0|sha256=")


def tilde_in_cache_variable(ctx):
    ctx.monkeypatch.setenv("HOME", str(ctx.tmp))
    ctx.monkeypatch.setenv("SKTRANSFER_CACHE", "~/skt")
    fit_onnx(ctx)
    return graph_entries(ctx.tmp / "skt")


def threads(ctx):
    est = PretrainedFeatureExtractor(**{**TINY, "engine": "torch", "layer": "stage1.0"}).fit(ctx.images)
    expected = est.transform(ctx.images)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(est.transform(ctx.images))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return expected, results, errors


def threads_agree(ctx, result):
    expected, results, errors = result
    assert not errors and len(results) == 20
    for out in results:
        np.testing.assert_array_equal(out, expected)


def tampered_state(kind):
    def fault(ctx):
        est = PretrainedFeatureExtractor(**{**TINY, "engine": "torch"}).fit(ctx.images)
        state = est.__getstate__()
        if kind == "old_bytes":
            state["backbone_"] = malicious_bytes(ctx)
        elif kind == "recipe_bytes":
            state["backbone_"] = {**state["backbone_"], "state_dict": malicious_bytes(ctx)}
        elif kind == "unknown_model":
            state["backbone_"] = {**state["backbone_"], "model": "resnet17"}
        elif kind == "wrong_tensors":
            import io

            buffer = io.BytesIO()
            torch.save({"groups.stem.0.weight": torch.zeros(1)}, buffer)
            state["backbone_"] = {**state["backbone_"], "state_dict": buffer.getvalue()}
        elif kind == "not_a_network":
            state["backbone_"] = ["a list"]
        blob = pickle.dumps(state)
        restored = PretrainedFeatureExtractor.__new__(PretrainedFeatureExtractor)
        restored.__setstate__(pickle.loads(blob))

    return fault


def skops_payload(ctx):
    sio = pytest.importorskip("skops.io")
    est = PretrainedFeatureExtractor(**{**TINY, "engine": "torch"}).fit(ctx.images)
    state = est.__getstate__()
    state["backbone_"] = {**state["backbone_"], "state_dict": malicious_bytes(ctx)}
    ctx.monkeypatch.setattr(PretrainedFeatureExtractor, "__getstate__", lambda self: state)
    path = ctx.tmp / "model.skops"
    sio.dump(est, path)
    ctx.monkeypatch.undo()
    return sio.load(path, trusted=sio.get_untrusted_types(file=path))


def build(model, weights_of):
    return lambda ctx: get_backbone(model, weights=weights_of(ctx))


def write(name, data):
    def make(ctx):
        path = ctx.tmp / name
        path.write_bytes(data(ctx) if callable(data) else data)
        return str(path)

    return make


def saved(name, obj):
    def make(ctx):
        path = ctx.tmp / name
        torch.save(obj, path)
        return str(path)

    return make


def tilde_weights(ctx):
    ctx.monkeypatch.setenv("HOME", str(ctx.tmp))
    lite0_file(ctx.tmp / "lite0.pth")
    return "~/lite0.pth"


def odd_extension_in_cwd(ctx):
    ctx.monkeypatch.chdir(ctx.tmp)
    lite0_file(ctx.tmp / "lite0.weights")
    return "lite0.weights"


def loaded_lite0(ctx, backbone):
    torch.manual_seed(0)
    expected = build_efficientnet_lite("efficientnet_lite0").conv_stem.weight
    torch.testing.assert_close(backbone.layer_group("stem")[0].weight, expected)


def missing_tilde(ctx):
    ctx.monkeypatch.setenv("HOME", str(ctx.tmp))
    return "~/nothing_here.pth"


# What a graph engine named for a layer read through a hook is told.
HOOKED = "runs an exported graph on the CPU; here the network is on 'cpu' and its layer needs forward hooks"


def extractor(**params):
    return lambda ctx: PretrainedFeatureExtractor(**{**TINY, "engine": "torch", **params}).fit(ctx.images)


class _Vectors(torch.nn.Module):
    """A user module ending in (N, C) vectors (e.g. a network whose classifier is Identity)."""

    def __init__(self, shape_tail=()):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)
        self.shape_tail = shape_tail

    def forward(self, x):
        vectors = self.conv(x).mean((2, 3))
        return vectors.unsqueeze(1).expand(-1, *self.shape_tail, -1) if self.shape_tail else vectors


def module_embedding(shape_tail=()):
    def run(ctx):
        return PretrainedFeatureExtractor(**{**TINY, "model": _Vectors(shape_tail)}).fit(ctx.images)

    return run


def views_fitted_with_a_store(random_state):
    def run(ctx):
        from sktransfer import EmbeddingStore, FrozenFeatureClassifier

        folder = ctx.tmp / f"views-{random_state}"
        extractor = PretrainedFeatureExtractor(**{**TINY, "engine": "torch", "cache": folder})
        y = np.arange(len(ctx.images)) % 2
        for _ in range(2):
            FrozenFeatureClassifier(extractor=extractor, n_views=3, random_state=random_state).fit(ctx.images, y)
        return len(EmbeddingStore(folder)), len(ctx.images)

    return run


def only_centre_crops_stored(ctx, counts):
    # Found by the red team: without a random_state every fit stored
    # n_views new random views per image, never read again.
    stored, n_images = counts
    assert stored == n_images


def views_stored_once(ctx, counts):
    stored, n_images = counts
    assert stored == n_images * (1 + 3)  # the same views at each fit: stored once, read back


def vectors_as_they_are(ctx, fitted):
    # Found by the red team: the (N, C) output was averaged as if it were a
    # map, giving one column, the same number for every image.
    assert fitted.n_features_out_ == 6
    out = fitted.transform(ctx.images)
    assert out.shape == (len(ctx.images), 6) and not np.allclose(out, out[:1])


# ------------------------------------------------------- engines, precision


def without(name):
    """Run a fit as if the engine ``name`` were not installed."""
    from sktransfer.runtime import _engines

    def fault(ctx, **params):
        ctx.monkeypatch.setattr(_engines, "engine_available", lambda e: e != name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = PretrainedFeatureExtractor(**{**TINY, **params}).fit(ctx.images)
        ctx.caught = caught
        return est

    return fault


def no_cpu_support(precision, engine):
    from sktransfer.runtime import _engines

    def fault(ctx):
        ctx.monkeypatch.setattr(_engines, "cpu_capabilities", lambda: frozenset({"int8"}))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = PretrainedFeatureExtractor(**{**TINY, "engine": engine, "precision": precision}).fit(ctx.images)
        ctx.caught = caught
        return est.transform(ctx.images)

    return fault


def float32_with_warning(ctx, out):
    messages = [str(w.message) for w in ctx.caught]
    assert any("runs in float32 here" in m for m in messages), messages
    np.testing.assert_allclose(out, torch_reference(ctx), atol=1e-4, rtol=1e-4)


def silent_fallback_to(engine):
    def check(ctx, est):
        assert est._engine == engine
        assert not ctx.caught, [str(w.message) for w in ctx.caught]

    return check


def no_nncf(ctx):
    from sktransfer.runtime import _engines

    ctx.monkeypatch.setattr(_engines, "quantizer_available", lambda e: e != "openvino")
    return PretrainedFeatureExtractor(**{**TINY, "engine": "openvino", "precision": "int8"}).fit(ctx.images)


def few_calibration_images(ctx):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = PretrainedFeatureExtractor(**{**TINY, "engine": "onnxruntime", "precision": "int8"}).fit(ctx.images)
    ctx.caught = caught
    return est


def warned_count(ctx, est):
    messages = [str(w.message) for w in ctx.caught]
    assert any(f"got {len(ctx.images)}, at least 32" in m for m in messages), messages
    assert est._precision == "int8"


def unreadable_calibration(ctx):
    missing = [str(ctx.tmp / f"gone{i}.jpg") for i in range(3)]
    return PretrainedFeatureExtractor(**{**TINY, "engine": "onnxruntime", "precision": "int8", "on_error": "nan"}).fit(
        missing
    )


ROWS = [
    # ------------------------------------------------------- weights files
    (
        "weights_empty_file",
        build("efficientnet_lite0", write("empty.pth", b"")),
        Raises(ValueError, "is empty (0 bytes)"),
    ),
    (
        "weights_garbage_bytes",
        build("efficientnet_lite0", write("junk.pth", b"\x00\x01garbage" * 9)),
        Raises(ValueError, "cannot read weights file"),
    ),
    (
        "weights_truncated_zip",
        build("efficientnet_lite0", write("cut.pth", lambda ctx: _half_of_saved(ctx))),
        Raises(ValueError, "cannot read weights file"),
    ),
    (
        "weights_wrong_keys",
        build("efficientnet_lite0", saved("r.pth", {"conv.weight": torch.zeros(2)})),
        Raises(ValueError, "(model 'efficientnet_lite0') does not fit the architecture EfficientNet:"),
    ),
    (
        "weights_not_tensors",
        build("efficientnet_lite0", saved("l.pth", [1, 2, 3])),
        Raises(ValueError, "does not hold a state dict of tensors"),
    ),
    (
        "weights_malicious_pickle",
        build("efficientnet_lite0", write("evil.pth", malicious_bytes)),
        Raises(ValueError, "cannot read weights file"),
    ),
    ("weights_tilde_path", build("efficientnet_lite0", tilde_weights), Policy(loaded_lite0, "~ is expanded")),
    (
        "weights_odd_extension",
        build("efficientnet_lite0", odd_extension_in_cwd),
        Policy(loaded_lite0, "any existing file is a weights file"),
    ),
    (
        "weights_missing_file",
        build("efficientnet_lite0", lambda ctx: str(ctx.tmp / "gone.pth")),
        Raises(FileNotFoundError, "weights file not found"),
    ),
    (
        "weights_missing_tilde_names_expanded",
        build("efficientnet_lite0", missing_tilde),
        Raises(FileNotFoundError, "nothing_here.pth' (weights='~/nothing_here.pth')"),
    ),
    ("weights_odd_extension_missing", build("resnet18", lambda ctx: "r18.weights"), Raises(ValueError, "no file")),
    (
        "weights_rewritten_same_size_and_mtime",
        weights_rewritten_same_size_and_mtime,
        Policy(identities_differ, "the cache identity is the content"),
    ),
    # ----------------------------------------------------------- caches
    ("cache_truncated_graph", corrupt_entry("truncate"), Policy(rebuilt_with_warning, "warns, rebuilds")),
    ("cache_flipped_bytes", corrupt_entry("flip"), Policy(rebuilt_with_warning, "warns, rebuilds")),
    ("cache_read_only", read_only_cache, Policy(in_memory_with_one_warning, "in memory, one warning")),
    ("cache_path_is_a_file", cache_path_is_a_file, Policy(in_memory_with_one_warning, "in memory, one warning")),
    (
        "cache_writable_by_others",
        cache_writable_by_others,
        Policy(untrusted_cache_unused("others can write to it"), "not read or written: warns, keeps graphs in memory"),
    ),
    (
        "cache_of_another_user",
        cache_of_another_user,
        Policy(untrusted_cache_unused("owned by another user"), "not read or written: warns, keeps graphs in memory"),
    ),
    ("cache_folders_created_private", fresh_cache_folders, Policy(created_private, "mode 0700")),
    ("cache_deleted_between_fit_and_transform", cache_deleted_after_fit, Policy(still_works_and_refills)),
    (
        "cache_variable_with_tilde",
        tilde_in_cache_variable,
        Policy(lambda ctx, entries: len(entries) == 1 or pytest.fail(entries), "~ is expanded"),
    ),
    # ------------------------------------------------------- parameters
    ("layer_unknown", extractor(layer="conv99"), Raises(ValueError, "is neither a layer group of tiny_convnet")),
    ("views_unseeded_with_a_store", views_fitted_with_a_store(None), Policy(only_centre_crops_stored)),
    ("views_seeded_with_a_store", views_fitted_with_a_store(0), Policy(views_stored_once)),
    ("module_returns_vectors", module_embedding(), Policy(vectors_as_they_are, "(N, C) vectors are the embedding")),
    (
        "module_returns_a_sequence",
        module_embedding(shape_tail=(5,)),
        Raises(ValueError, "must return (batch, features) vectors or a (batch, channels, height, width)"),
    ),
    ("layer_unknown_module_path", extractor(layer="groups.stage1.7"), Raises(ValueError, "named_modules")),
    ("pooling_token_on_cnn", extractor(pooling="token"), Raises(ValueError, "needs a token sequence")),
    ("pooling_unknown", extractor(pooling="median"), Raises(InvalidParameterError, "'pooling' parameter")),
    (
        "onnxruntime_with_hooked_layer",
        extractor(engine="onnxruntime", layer="stage1.0"),
        Raises(
            ValueError,
            f"engine='onnxruntime' {HOOKED}",
        ),
    ),
    ("tiny_model_with_weights", extractor(weights="DEFAULT"), Raises(ValueError, "use weights=None")),
    # ------------------------------------------------ engines, precision
    ("int8_on_torch_engine", extractor(precision="int8"), Raises(ValueError, "needs a graph engine")),
    ("precision_unknown", extractor(precision="fp8"), Raises(InvalidParameterError, "'precision' parameter")),
    ("engine_unknown", extractor(engine="tensorrt"), Raises(InvalidParameterError, "'engine' parameter")),
    ("dtype_keyword_renamed", extractor(dtype="float16"), Raises(TypeError, "unexpected keyword argument 'dtype'")),
    (
        "openvino_with_hooked_layer",
        extractor(engine="openvino", layer="stage1.0"),
        Raises(
            ValueError,
            f"engine='openvino' {HOOKED}",
        ),
    ),
    (
        "int8_auto_with_hooked_layer",
        extractor(engine="auto", precision="int8", layer="stage1.0"),
        Raises(ValueError, "precision='int8' runs on the CPU"),
    ),
    (
        "openvino_missing_named",
        lambda ctx: without("openvino")(ctx, engine="openvino"),
        Raises(ImportError, "pip install openvino onnx"),
    ),
    # A layer no graph engine can run is the error even where the package is missing.
    (
        "openvino_missing_with_hooked_layer",
        lambda ctx: without("openvino")(ctx, engine="openvino", layer="stage1.0"),
        Raises(
            ValueError,
            f"engine='openvino' {HOOKED}",
        ),
    ),
    (
        "openvino_missing_auto",
        lambda ctx: without("openvino")(ctx, engine="auto"),
        Policy(silent_fallback_to("onnxruntime"), "silently the next engine"),
    ),
    ("int8_openvino_without_nncf", no_nncf, Raises(ImportError, "pip install nncf")),
    ("int8_few_calibration_images", few_calibration_images, Policy(warned_count, "warns naming the count")),
    ("int8_no_readable_calibration_image", unreadable_calibration, Raises(ValueError, "none could be read")),
    (
        "bfloat16_without_cpu_support_openvino",
        no_cpu_support("bfloat16", "openvino"),
        Policy(float32_with_warning, "warns, float32"),
    ),
    (
        "bfloat16_without_cpu_support_torch",
        no_cpu_support("bfloat16", "torch"),
        Policy(float32_with_warning, "warns, float32"),
    ),
    (
        "float16_on_cpu_onnxruntime",
        no_cpu_support("float16", "onnxruntime"),
        Policy(float32_with_warning, "warns, float32"),
    ),
    # ---------------------------------------------------- threads, state
    ("threads_share_a_hooked_extractor", threads, Policy(threads_agree, "equal results")),
    ("unpickle_old_network_bytes", tampered_state("old_bytes"), Raises(ValueError, "earlier sktransfer")),
    (
        "unpickle_payload_in_state_dict",
        tampered_state("recipe_bytes"),
        Raises(ValueError, "cannot read the saved network as a state dict"),
    ),
    ("unpickle_unknown_model", tampered_state("unknown_model"), Raises(ValueError, "unknown model 'resnet17'")),
    ("unpickle_wrong_tensors", tampered_state("wrong_tensors"), Raises(ValueError, "the saved network does not fit")),
    ("unpickle_foreign_network_object", tampered_state("not_a_network"), Raises(ValueError, "must be a Backbone")),
    ("skops_file_with_payload", skops_payload, Raises(ValueError, "cannot read the saved network")),
]


# ------------------------------------------- classifier on augmented views


def frozen(fit=True, y=(0, 1, 0, 1), images=None, fit_params=None, **params):
    """Fit a FrozenFeatureClassifier on the tiny images (or call ``fit`` on them when it is a callable)."""
    from sktransfer import FrozenFeatureClassifier

    def fault(ctx):
        clf = FrozenFeatureClassifier(
            **{
                "extractor": PretrainedFeatureExtractor(**TINY, engine="torch"),
                "n_views": 1,
                "random_state": 0,
                **params,
            }
        )
        X = ctx.images if images is None else images
        fitted = clf.fit(X, None if y is None else list(y), **(fit_params or {}))
        return fit(fitted, ctx) if callable(fit) else fitted

    return fault


def _returns_array(image):
    return np.asarray(image)


FROZEN_ROWS = [
    ("frozen_n_views_negative", frozen(n_views=-1), Raises(InvalidParameterError, "'n_views' parameter")),
    ("frozen_augment_unknown", frozen(augment="heavy"), Raises(InvalidParameterError, "'augment' parameter")),
    ("frozen_augment_not_callable", frozen(augment=3), Raises(InvalidParameterError, "'augment' parameter")),
    (
        "frozen_augment_returns_array",
        frozen(augment=_returns_array),
        Raises(TypeError, "augment must return a PIL image, got ndarray"),
    ),
    (
        "frozen_extractor_not_a_transformer",
        frozen(extractor="efficientnet_lite0"),
        Raises(InvalidParameterError, "'extractor' parameter"),
    ),
    (
        "frozen_nothing_to_fit_on",
        frozen(n_views=0, keep_original=False),
        Raises(ValueError, "leaves nothing to fit on"),
    ),
    (
        "frozen_cv_without_centre_crops",
        frozen(n_views=1, keep_original=False, cv=2),
        Raises(ValueError, "set keep_original=True or cv=None"),
    ),
    ("frozen_cv_not_a_splitter", frozen(cv="five"), Raises(InvalidParameterError, "'cv' parameter")),
    # Four images, two per class: three stratified folds cannot be drawn.
    ("frozen_cv_more_folds_than_images_per_class", frozen(n_views=1, cv=3), Raises(ValueError, "n_splits=3")),
    ("frozen_empty_X", frozen(images=[], y=[]), Raises(ValueError, "X is empty")),
    ("frozen_y_length_mismatch", frozen(y=(0, 1, 0)), Raises(ValueError, "X has 4 images but y has 3 labels")),
    ("frozen_y_missing", frozen(y=None), Raises(ValueError, "fit needs labels y")),
    (
        "frozen_y_contains_none",
        frozen(y=("a", None, "a", "b")),
        Raises(ValueError, "y contains None at position(s) [1]"),
    ),
    ("frozen_single_class", frozen(y=("a", "a", "a", "a")), Raises(ValueError, "y has a single class ('a')")),
    ("frozen_continuous_y", frozen(y=(0.5, 1.5, 2.5, 3.5)), Raises(ValueError, "Unknown label type")),
    (
        "frozen_predict_proba_without_it",
        frozen(fit=lambda clf, ctx: clf.predict_proba(ctx.images), classifier=LinearSVC()),
        Raises(AttributeError, "predict_proba"),
    ),
    (
        "frozen_sample_weight_not_taken",
        frozen(classifier=KNeighborsClassifier(1), fit_params={"sample_weight": np.ones(4)}),
        Raises(TypeError, "KNeighborsClassifier.fit does not take sample_weight"),
    ),
    (
        "frozen_sample_weight_wrong_length",
        frozen(fit_params={"sample_weight": np.ones(3)}),
        Raises(ValueError, "sample_weight.shape == (3,), expected (4,)"),
    ),
    (
        "frozen_predict_on_other_table_width",
        frozen(fit=lambda clf, ctx: clf.predict(np.zeros((2, 16))), images=np.zeros((4, 64))),
        Raises(ValueError, "expecting 64 features"),
    ),
    (
        "frozen_unreadable_training_image",
        frozen(images=["/nonexistent/a.png", "/nonexistent/b.png"], y=(0, 1)),
        Raises(ImageLoadError, "/nonexistent/a.png"),
    ),
]


def _half_of_saved(ctx):
    import io

    buffer = io.BytesIO()
    torch.save(build_efficientnet_lite("efficientnet_lite0").state_dict(), buffer)
    data = buffer.getvalue()
    return data[: len(data) // 2]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (36 + 4 * (i % 2), 40, 3), dtype=np.uint8) for i in range(4)]


# Rows that run OpenVINO itself (the others fake its absence or fail before it runs).
NEEDS_OPENVINO = {"int8_openvino_without_nncf", "bfloat16_without_cpu_support_openvino"}


def test_catalogue_is_large_and_ids_are_unique():
    ids = [row[0] for row in ROWS + FROZEN_ROWS]
    assert len(ids) == len(set(ids)) and len(ids) >= 20


@pytest.mark.parametrize(
    "row_id, fault, expected",
    [
        pytest.param(*row, id=row[0], marks=[pytest.mark.openvino] if row[0] in NEEDS_OPENVINO else [])
        for row in ROWS + FROZEN_ROWS
    ],
)
def test_bad_input(row_id, fault, expected, tmp_path, monkeypatch, images):
    ctx = Ctx(tmp=tmp_path, monkeypatch=monkeypatch, images=images)
    monkeypatch.setenv("SKTRANSFER_CACHE", str(tmp_path / "default_cache"))
    check_row(fault, expected, ctx)
    if ctx.marker is not None:
        assert not ctx.marker.exists(), "a payload in the input ran"
