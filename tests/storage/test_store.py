"""EmbeddingStore and PretrainedFeatureExtractor(cache=...)."""

import hashlib
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image
from storage_helpers import computed, decode_count, photos, tiny, write_images  # noqa: F401 (fixtures)

from sktransfer.runtime import output_key
from sktransfer.storage import EmbeddingStore, content_key

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, HERE])}


def _run(code, *args):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ---------------------------------------------------------------- the store


def test_put_get_round_trip_and_absent_keys(tmp_path):
    store = EmbeddingStore(tmp_path / "s")
    config = store.register({"model": "m"}, n_features=3)
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    store.put(config, [b"a" * 32, b"b" * 32], vectors)
    got = store.get(config, [b"b" * 32, b"c" * 32, None, b"a" * 32])
    assert np.array_equal(got[0], vectors[1]) and np.array_equal(got[3], vectors[0])
    assert got[1] is None and got[2] is None
    other = store.register({"model": "other"}, n_features=3)
    assert store.get(other, [b"a" * 32]) == [None]
    assert store.configurations()[config] == ({"model": "m"}, 3)


def test_nan_rows_and_none_keys_are_not_stored(tmp_path):
    store = EmbeddingStore(tmp_path)
    config = store.register({}, 2)
    store.put(config, [b"a" * 32, None, b"c" * 32], np.array([[1, 2], [3, 4], [np.nan, 0]], np.float32))
    assert len(store) == 1


def test_lookup_of_more_keys_than_one_query_holds(tmp_path):
    store = EmbeddingStore(tmp_path)
    config = store.register({}, 1)
    keys = [i.to_bytes(32, "big") for i in range(1203)]
    store.put(config, keys, np.arange(1203, dtype=np.float32)[:, None])
    got = store.get(config, keys[::-1])
    assert [float(v[0]) for v in got] == list(range(1202, -1, -1))


def _tamper(store, config, content, vector, checksum=None):
    """Overwrite one row behind the store's back (checksum None: keep the stored one)."""
    db = store._connection()
    if checksum is None:
        db.execute("UPDATE embeddings SET vector = ? WHERE config = ? AND content = ?", (vector, config, content))
    else:
        db.execute(
            "UPDATE embeddings SET vector = ?, checksum = ? WHERE config = ? AND content = ?",
            (vector, checksum, config, content),
        )


def test_damaged_rows_are_absent_with_one_warning_counting_them_and_can_be_stored_again(tmp_path):
    # Found by the red team: damaged rows were served (a flipped bit) or
    # raised ValueError/TypeError (wrong length, odd byte count, TEXT).
    store = EmbeddingStore(tmp_path)
    config = store.register({}, 2)
    keys = [bytes([i]) * 32 for i in range(5)]
    vectors = np.arange(10, dtype=np.float32).reshape(5, 2)
    store.put(config, keys, vectors)
    flipped = bytearray(vectors[0].tobytes())
    flipped[0] ^= 1
    _tamper(store, config, keys[0], bytes(flipped))
    _tamper(store, config, keys[1], vectors[1].tobytes()[:-4])
    _tamper(store, config, keys[2], vectors[2].tobytes()[:-1])
    _tamper(store, config, keys[3], "1.0 2.0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = store.get(config, keys)
    assert got[:4] == [None] * 4 and np.array_equal(got[4], vectors[4])
    assert [str(w.message) for w in caught] == [
        f"4 stored embedding(s) in {store.path!r} were damaged (checksum mismatch, wrong length or type, or not "
        "finite); they are not used and are computed again"
    ]
    store.put(config, keys, vectors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(np.stack(store.get(config, keys)), vectors)


def test_a_nan_vector_under_a_matching_checksum_is_not_served(tmp_path):
    store = EmbeddingStore(tmp_path)
    config = store.register({}, 2)
    key = b"n" * 32
    store.put(config, [key], np.ones((1, 2), np.float32))
    nan = np.full(2, np.nan, np.float32).tobytes()
    _tamper(store, config, key, nan, zlib.crc32(nan, zlib.crc32(key, zlib.crc32(config.encode()))))
    with pytest.warns(UserWarning, match=r"1 stored embedding\(s\) .* damaged"):
        assert store.get(config, [key]) == [None]
    assert len(store) == 0


def test_put_refuses_an_unregistered_config_and_vectors_of_another_width(tmp_path):
    store = EmbeddingStore(tmp_path)
    config = store.register({}, 2)
    with pytest.raises(ValueError, match="config 'nope' is not registered"):
        store.put("nope", [b"a" * 32], np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"vectors must have shape \(n, 2\) .*got \(1, 3\)"):
        store.put(config, [b"a" * 32], np.ones((1, 3)))
    assert store.get("nope", [b"a" * 32]) == [None] and len(store) == 0


def test_a_store_of_another_format_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "embeddings.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE embeddings (config TEXT, content BLOB, vector BLOB)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(OSError, match="holds a store of another format .*delete the file to start a new store"):
        EmbeddingStore(tmp_path).register({}, 1)
    assert path.read_bytes() == before


def test_store_pickles_as_its_folder_and_reopens(tmp_path):
    store = EmbeddingStore(tmp_path)
    config = store.register({}, 1)
    store.put(config, [b"k" * 32], np.ones((1, 1), np.float32))
    again = pickle.loads(pickle.dumps(store))
    assert again == store and again.get(config, [b"k" * 32])[0][0] == 1.0


# ------------------------------------------------------------------- keys


def test_content_key_depends_on_bytes_not_names(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (4, 4), "red").save(a)
    b.write_bytes(a.read_bytes())
    assert content_key(str(a)) == content_key(b) == content_key(a.read_bytes())
    assert content_key(str(tmp_path / "gone.png")) is None
    image = Image.new("RGB", (4, 4), "red")
    assert content_key(image) != content_key(image.convert("L"))
    assert content_key(image) != content_key(image.resize((2, 8)))


def test_content_key_of_tensors_and_arrays():
    torch = pytest.importorskip("torch")
    t = torch.zeros(3, 4, 4, dtype=torch.uint8)
    assert content_key(t) == content_key(t.clone()) != content_key(t.float())
    assert content_key(np.zeros((4, 4))) != content_key(np.zeros((2, 8)))


def _changed(name):
    """A fitted extractor differing from the reference in one setting."""
    if name == "precision":
        # int8 is the precision every CPU runs as asked (bfloat16 falls back
        # to float32 where the CPU lacks it, and then rightly keeps the key).
        return tiny(engine="onnxruntime", precision="int8")
    changes = {
        "layer": dict(layer="stage2"),
        "pooling": dict(pooling="max"),
        "tta": dict(tta="flip"),
        "engine": dict(engine="onnxruntime"),
        "weights": dict(model="resnet18", weights=None),
    }
    return tiny(**changes[name])


@pytest.mark.filterwarnings("ignore:precision='int8' calibrates")
@pytest.mark.parametrize("name", ["layer", "pooling", "tta", "engine", "weights", "precision"])
def test_every_setting_that_changes_the_output_changes_the_key(name, photos):
    reference_params = dict(engine="onnxruntime") if name == "precision" else {}
    reference = output_key(tiny(**reference_params).fit(photos).output_description())
    assert output_key(_changed(name).fit(photos).output_description()) != reference


def test_version_and_preprocessing_are_in_the_key(photos, monkeypatch):
    import dataclasses

    import sktransfer

    est = tiny().fit(photos)
    reference = output_key(est.output_description())
    monkeypatch.setattr(sktransfer, "__version__", "99.0")
    assert output_key(est.output_description()) != reference
    monkeypatch.undo()
    # Resizing the same filter in PIL instead of on the tensor moves some values by a level.
    from sktransfer.image import _transforms

    monkeypatch.setattr(_transforms, "_TENSOR_FILTERS", frozenset())
    assert output_key(est.output_description()) != reference
    monkeypatch.undo()
    est.backbone_.preprocessing = dataclasses.replace(est.backbone_.preprocessing, crop_size=24)
    assert output_key(est.output_description()) != reference


def test_weights_without_identity_are_keyed_by_their_tensors(photos):
    torch = pytest.importorskip("torch")
    from sktransfer.backbones._tiny import make_tiny_backbone

    def key(seed):
        module = make_tiny_backbone(seed=seed)
        return tiny(model=module).fit(photos).output_description()["weights"]

    assert key(1) == key(1) != key(2)
    assert key(1).startswith("sha256=")
    assert tiny().fit(photos).output_description()["weights"] == "tiny_convnet|seed=0"
    del torch


# ------------------------------------------------------ the extractor's cache


def test_warm_run_equals_computed_and_decodes_nothing(photos, computed, tmp_path, decode_count):
    cold = tiny(cache=tmp_path).fit(photos).transform(photos)
    assert np.array_equal(cold, computed) and len(decode_count) == len(photos)
    decode_count.clear()
    warm = tiny(cache=str(tmp_path)).fit(photos).transform(photos)
    assert np.array_equal(warm, computed) and decode_count == []


def test_only_misses_are_decoded_and_order_is_kept(photos, computed, tmp_path, decode_count):
    est = tiny(cache=EmbeddingStore(tmp_path)).fit(photos)
    est.transform(photos[3:7])
    decode_count.clear()
    out = est.transform(photos[::-1])
    assert np.array_equal(out, computed[::-1])
    assert sorted(decode_count) == sorted(set(photos) - set(photos[3:7]))


def test_another_setting_misses(photos, tmp_path, decode_count):
    tiny(cache=tmp_path).fit(photos).transform(photos)
    decode_count.clear()
    tiny(cache=tmp_path, pooling="max").fit(photos).transform(photos)
    assert len(decode_count) == len(photos)


def test_rewritten_file_under_the_same_name_is_embedded_again(tmp_path, decode_count):
    path = write_images(tmp_path / "a", 1, seed=1)[0]
    est = tiny(cache=tmp_path / "store").fit([path])
    first = est.transform([path])
    Image.fromarray(np.full((16, 20, 3), 200, np.uint8)).save(path)
    decode_count.clear()
    second = est.transform([path])
    assert decode_count == [path] and not np.array_equal(first, second)
    assert np.array_equal(second, tiny().fit([path]).transform([path]))


def test_same_image_under_two_names_is_embedded_once(tmp_path, decode_count):
    path = write_images(tmp_path / "a", 1)[0]
    copy = tmp_path / "copy.png"
    copy.write_bytes(open(path, "rb").read())
    est = tiny(cache=tmp_path / "store").fit([path])
    est.transform([path])
    decode_count.clear()
    out = est.transform([str(copy)])
    assert decode_count == [] and np.array_equal(out, tiny().fit([path]).transform([path]))


def test_in_memory_images_are_stored_by_their_pixels(tmp_path, decode_count):
    rng = np.random.default_rng(5)
    arrays = list(rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    est = tiny(cache=tmp_path).fit(arrays)
    cold = est.transform(arrays)
    decode_count.clear()
    pil = [Image.fromarray(a) for a in arrays]
    assert np.array_equal(est.transform([a.copy() for a in arrays]), cold) and decode_count == []
    est.transform(pil)  # another kind of input: another key, computed once
    assert len(decode_count) == 5


def test_unreadable_images_are_not_stored_and_keep_failing(photos, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    est = tiny(cache=tmp_path / "store", on_error="nan").fit(photos)
    for _ in range(2):
        with pytest.warns(UserWarning, match="(?s)1 of 3 images.*bad.png: not an image file"):
            out = est.transform([photos[0], str(bad), photos[1]])
        assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()
    assert len(EmbeddingStore(tmp_path / "store")) == 2


def test_failure_in_a_batch_of_misses_names_the_input_position(tmp_path):
    arrays = [np.zeros((8, 8, 3), np.uint8), np.full((2, 2), -1.0), np.ones((8, 8, 3), np.uint8)]
    est = tiny(cache=tmp_path, on_error="nan").fit(arrays[:1])
    est.transform(arrays[:1])  # arrays[0] is now stored: the misses are [1, 2]
    with pytest.warns(UserWarning, match=r"X\[1\] \(array 2x2\): float pixel values"):
        est.transform(arrays)


def test_extractor_with_a_store_clones_and_pickles(photos, computed, tmp_path):
    from sklearn.base import clone

    est = tiny(cache=EmbeddingStore(tmp_path)).fit(photos)
    assert clone(est).cache == est.cache
    again = pickle.loads(pickle.dumps(est))
    assert np.array_equal(again.transform(photos), computed)


# ---------------------------------------------- kills and concurrent writers

_KILLED_WRITER = """
import os, sys
import sktransfer.storage._store as store_module
from storage_helpers import tiny, write_images
import pathlib
paths = write_images(pathlib.Path(sys.argv[1]), 13)
real_exit = store_module._transaction.__exit__
calls = []

def exit_then_die(self, *exc):
    calls.append(1)
    if len(calls) == int(sys.argv[3]):  # dies inside this transaction, before COMMIT
        os._exit(9)
    return real_exit(self, *exc)

store_module._transaction.__exit__ = exit_then_die
tiny(cache=sys.argv[2]).fit(paths).transform(paths)
"""


def test_a_writer_killed_mid_transaction_loses_only_that_batch(tmp_path, decode_count):
    # Transactions: register (1), then one per batch of 4; dying in the 4th
    # leaves 2 committed batches (8 rows) and a store that opens cleanly.
    result = _run(_KILLED_WRITER, tmp_path / "img", tmp_path / "store", 4)
    assert result.returncode == 9, result.stderr
    store = EmbeddingStore(tmp_path / "store")
    assert len(store) == 8
    assert store._connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    paths = sorted(str(p) for p in (tmp_path / "img").iterdir())
    out = tiny(cache=store).fit(paths).transform(paths)
    assert len(decode_count) == 13 - 8
    assert np.array_equal(out, tiny().fit(paths).transform(paths))


_WRITER = """
import sys
from storage_helpers import tiny
paths = sys.argv[2].split(",")
tiny(cache=sys.argv[1], batch_size=1).fit(paths).transform(paths)
print("done")
"""


def test_two_processes_writing_one_store_both_finish(tmp_path):
    paths = write_images(tmp_path / "img", 16, seed=2)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path / "store"), ",".join(part)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for part in (paths[:10], paths[6:])  # overlapping: both may write rows 6..9
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    store = EmbeddingStore(tmp_path / "store")
    assert len(store) == 16
    (config,) = store.configurations()
    got = np.stack(store.get(config, [content_key(p) for p in paths]))
    # Exact at the writers' batch size (other batch sizes differ by rounding).
    assert np.array_equal(got, tiny(batch_size=1).fit(paths).transform(paths))


def test_garbage_database_file_is_an_os_error_naming_the_folder(tmp_path):
    (tmp_path / "embeddings.sqlite").write_bytes(b"\x00garbage" * 200)
    with pytest.raises(OSError, match=r"cannot open the embedding store in .*file is not a database"):
        len(EmbeddingStore(tmp_path))
    assert sqlite3 is not None


def test_storage_names_import_neither_torch_nor_pyarrow():
    code = (
        "import sys; from sktransfer import EmbeddingStore, embed; from sktransfer.storage import content_key; "
        "import sktransfer.__main__; print([m for m in ('torch', 'skorch', 'pyarrow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_store_folder_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    store = EmbeddingStore("~/emb")
    store.register({}, 1)
    assert store.directory == str(tmp_path / "emb") and (tmp_path / "emb" / "embeddings.sqlite").exists()


def test_a_precision_that_falls_back_keeps_the_float32_key(photos, monkeypatch):
    from sktransfer.runtime import _engines

    monkeypatch.setattr(_engines, "cpu_capabilities", lambda: frozenset({"int8"}))
    with pytest.warns(UserWarning, match="bfloat16"):
        fallback = tiny(precision="bfloat16").fit(photos)
    reference = output_key(tiny().fit(photos).output_description())
    assert output_key(fallback.output_description()) == reference


# ------------------------------------------------------------- packing, merging


def test_vectors_round_trip_bit_for_bit_packed_or_not(tmp_path):
    store = EmbeddingStore(tmp_path)
    config = store.register({}, 6)
    vectors = np.array(
        [
            [0.0, -0.0, 1.5, 0.0, 0.0, 0.0],  # mostly zeros: packed; -0.0 kept
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # dense: stored as it is
            [0.0] * 6,
        ],
        dtype=np.float32,
    )
    keys = [bytes([i]) * 32 for i in range(3)]
    store.put(config, keys, vectors)
    back = np.stack(store.get(config, keys))
    assert back.tobytes() == vectors.tobytes()


def test_a_1280_wide_row_costs_no_more_than_the_raw_vector(tmp_path):
    # ReLU-like vectors, about half exact zeros, as the pooled features of ReLU networks are.
    rng = np.random.default_rng(0)
    vectors = np.maximum(rng.standard_normal((2000, 1280)), 0).astype(np.float32)
    store = EmbeddingStore(tmp_path)
    config = store.register({"model": "lite0"}, 1280)
    # Content keys are SHA-256 digests: in random order, as real ones.
    keys = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(len(vectors))]
    for start in range(0, len(vectors), 250):
        store.put(config, keys[start : start + 250], vectors[start : start + 250])
    store.close()
    sqlite3.connect(store.path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    per_row = os.path.getsize(store.path) / len(vectors)
    assert per_row <= 1280 * 4, per_row


def test_merge_gathers_the_stores_of_two_machines(tmp_path):
    here, there = EmbeddingStore(tmp_path / "here"), EmbeddingStore(tmp_path / "there")
    config = here.register({"model": "m"}, 2)
    assert there.register({"model": "m"}, 2) == config
    here.put(config, [b"a" * 32, b"b" * 32], np.array([[1, 2], [3, 4]], np.float32))
    there.put(config, [b"b" * 32, b"c" * 32], np.array([[9, 9], [5, 6]], np.float32))
    other = there.register({"model": "other"}, 1)
    there.put(other, [b"a" * 32], np.ones((1, 1), np.float32))
    assert here.merge(tmp_path / "there") == 2
    got = here.get(config, [b"a" * 32, b"b" * 32, b"c" * 32])
    assert [v.tolist() for v in got] == [[1, 2], [3, 4], [5, 6]]  # b: this store's row kept
    assert here.get(other, [b"a" * 32])[0].tolist() == [1.0]
    assert here.merge(there) == 0 and len(there) == 3  # again: nothing new; the source untouched
