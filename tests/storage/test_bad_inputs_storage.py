"""Catalogue of bad inputs to the embedding store, streaming and embed(): one row per fault.

Each row is ``(id, make, expected)``: ``make(ctx)`` produces the fault and
calls the library (``ctx`` has ``tmp_path``, ``monkeypatch`` and ``photos``);
``expected`` is ``(exception type, message fragment)`` or a policy: a
callable asserting on what ``make`` returned.
"""

import io
import os
import shutil
import sqlite3
import sys
import warnings
from contextlib import closing
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _catalogue import check_row, returns_within
from PIL import Image
from sklearn.utils._param_validation import InvalidParameterError
from storage_helpers import photos, tiny, write_images  # noqa: F401 (fixtures)

from sktransfer import embed
from sktransfer.image import ImageLoadError
from sktransfer.storage import EmbeddingStore, EmbeddingTableWriter, content_key, read_embeddings


def _fitted(ctx, **params):
    return tiny(**params).fit(ctx.photos)


def _transform_recording(ctx, est):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = est.transform(ctx.photos)
    return out, tiny().fit(ctx.photos).transform(ctx.photos), [str(w.message) for w in caught]


def _computed_with_one_warning(fragment):
    def check(result):
        out, computed, messages = result
        assert np.array_equal(out, computed)
        assert len(messages) == 1 and fragment in messages[0] and "embedding without it" in messages[0], messages

    return check


def _damaged_row(damage):
    """A fault: the stored vector of one photo is replaced by ``damage(its bytes)``; then two warm runs."""

    def make(ctx):
        _fitted(ctx, cache=ctx.tmp_path).transform(ctx.photos)
        key = content_key(ctx.photos[3])
        with closing(sqlite3.connect(ctx.tmp_path / "embeddings.sqlite")) as db, db:
            (vector,) = db.execute("SELECT vector FROM embeddings WHERE content = ?", (key,)).fetchone()
            db.execute("UPDATE embeddings SET vector = ? WHERE content = ?", (damage(vector), key))
        first = _transform_recording(ctx, _fitted(ctx, cache=ctx.tmp_path))
        return first, _transform_recording(ctx, _fitted(ctx, cache=ctx.tmp_path))

    return make


def _recomputed_with_one_warning_then_repaired(result):
    (out, computed, messages), (again, _, messages_again) = result
    # The damaged image is embedded again in a batch of its own: PyTorch's last bits may differ.
    np.testing.assert_allclose(out, computed, rtol=1e-5, atol=1e-6)
    assert len(messages) == 1 and "1 stored embedding(s)" in messages[0] and "damaged" in messages[0], messages
    np.testing.assert_array_equal(again, out)
    assert messages_again == []  # the row was written anew


_OLD_LAYOUT = (
    "CREATE TABLE configurations (config TEXT PRIMARY KEY, description TEXT NOT NULL, n_features INTEGER NOT NULL)",
    "CREATE TABLE embeddings (config TEXT NOT NULL, content BLOB NOT NULL, vector BLOB NOT NULL, "
    "PRIMARY KEY (config, content)) WITHOUT ROWID",
)


def _old_format_store(ctx):
    with closing(sqlite3.connect(ctx.tmp_path / "embeddings.sqlite")) as db, db:
        for statement in _OLD_LAYOUT:
            db.execute(statement)
    return EmbeddingStore(ctx.tmp_path)


def _format_2_store(ctx):
    """A store as format 2 wrote it: raw vector bytes with a checksum, 4 KiB pages, user_version 2."""
    with closing(sqlite3.connect(ctx.tmp_path / "embeddings.sqlite")) as db, db:
        db.execute(_OLD_LAYOUT[0])
        db.execute(
            "CREATE TABLE embeddings (config TEXT NOT NULL, content BLOB NOT NULL, vector BLOB NOT NULL, "
            "checksum INTEGER NOT NULL, PRIMARY KEY (config, content)) WITHOUT ROWID"
        )
        db.execute("PRAGMA user_version=2")
    return EmbeddingStore(ctx.tmp_path)


def _transform_with_an_old_format_store(ctx):
    _old_format_store(ctx)
    return _transform_recording(ctx, _fitted(ctx, cache=ctx.tmp_path))


def _conv_then(activation):
    torch.manual_seed(0)  # equal weights in both modules
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), activation, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def _modules_with_equal_weights(ctx):
    # Found by the red team: a module passed in was keyed by its class name
    # and weights only, so a second module with the same weights but other
    # code (ReLU against Tanh, both nn.Sequential) was served the first
    # one's embeddings.
    relu = tiny(model=_conv_then(torch.nn.ReLU()), cache=ctx.tmp_path).fit(ctx.photos).transform(ctx.photos)
    tanh = tiny(model=_conv_then(torch.nn.Tanh()), cache=ctx.tmp_path).fit(ctx.photos)
    return (
        tanh.transform(ctx.photos),
        tiny(model=_conv_then(torch.nn.Tanh())).fit(ctx.photos).transform(ctx.photos),
        relu,
    )


def _own_embeddings(result):
    stored, computed, other = result
    np.testing.assert_allclose(stored, computed, rtol=1e-5, atol=1e-6)
    assert not np.allclose(stored, other)


def _module_without_source(ctx):
    namespace = {"nn": torch.nn}
    exec("class Interactive(nn.Module):\n    def forward(self, x):\n        return x.float().mean((2, 3))", namespace)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = tiny(model=namespace["Interactive"](), cache=ctx.tmp_path).fit(ctx.photos)
        out = est.transform(ctx.photos)
    return out, EmbeddingStore(ctx.tmp_path), [str(w.message) for w in caught]


def _not_stored_with_a_warning(result):
    out, store, messages = result
    assert out.shape == (11, 3) and np.isfinite(out).all()
    assert [m for m in messages if "cannot be read" in m and "not stored" in m], messages
    assert len(store) == 0


def _store_in_a_file(ctx):
    blocker = ctx.tmp_path / "file"
    blocker.write_text("x")
    return _transform_recording(ctx, _fitted(ctx, cache=blocker))


def _garbage_database(ctx):
    (ctx.tmp_path / "embeddings.sqlite").write_bytes(b"\x01not sqlite" * 100)
    return _transform_recording(ctx, _fitted(ctx, cache=ctx.tmp_path))


def _garbage_database_direct(ctx):
    (ctx.tmp_path / "embeddings.sqlite").write_bytes(b"\x01not sqlite" * 100)
    return EmbeddingStore(ctx.tmp_path).register({}, 1)


def _merge_garbage(ctx):
    (ctx.tmp_path / "garbage").mkdir()
    (ctx.tmp_path / "garbage" / "embeddings.sqlite").write_bytes(b"\x01not sqlite" * 100)
    return EmbeddingStore(ctx.tmp_path / "here").merge(ctx.tmp_path / "garbage")


def _merge_width_clash(ctx):
    here, there = EmbeddingStore(ctx.tmp_path / "here"), EmbeddingStore(ctx.tmp_path / "there")
    config = here.register({"model": "m"}, 2)
    there.register({"model": "m"}, 3)
    there.put(config, [b"a" * 32], np.ones((1, 3), np.float32))
    try:
        here.merge(there)
    finally:
        assert len(here) == 0 and here.configurations()[config][1] == 2  # nothing merged


def _merge_into_itself_through_a_link(ctx):
    store = EmbeddingStore(ctx.tmp_path / "here")
    store.register({"model": "m"}, 2)
    os.symlink(ctx.tmp_path / "here", ctx.tmp_path / "link")
    return store.merge(ctx.tmp_path / "link")


def _store_write_fails(ctx):
    import sqlite3

    def disk_error(self, *args):
        raise sqlite3.OperationalError("disk I/O error")

    ctx.monkeypatch.setattr(EmbeddingStore, "put", disk_error)
    return _transform_recording(ctx, _fitted(ctx, cache=ctx.tmp_path))


def _stale_file(ctx):
    path = write_images(ctx.tmp_path / "a", 1, seed=4)[0]
    est = _fitted(ctx, cache=ctx.tmp_path / "store")
    before = est.transform([path])
    write_images(ctx.tmp_path / "a", 1, seed=5)  # same name, other pixels
    return before, est.transform([path]), tiny().fit([path]).transform([path])


def _file_replaced_after_hashing(ctx):
    import sktransfer.storage

    old, new = write_images(ctx.tmp_path / "old", 1, seed=4)[0], write_images(ctx.tmp_path / "new", 1, seed=5)[0]
    photo = ctx.tmp_path / "photo.png"
    shutil.copyfile(old, photo)
    looked_up = sktransfer.storage.content_key

    def replace_once_hashed(item):
        key = looked_up(item)
        if os.fspath(item) == str(photo) and not replaced:
            replaced.append(item)
            shutil.copyfile(new, photo)  # after the look-up's hash, before the decoding
        return key

    replaced = []
    ctx.monkeypatch.setattr(sktransfer.storage, "content_key", replace_once_hashed)
    est = _fitted(ctx, cache=ctx.tmp_path / "store")
    during = est.transform([str(photo)])
    assert replaced, "the fault was not injected"
    # The old photo, under another name, from the same store, and both photos computed without one.
    return est.transform([old]), during, tiny().fit([old]).transform([old, new])


def _each_photo_its_own_embedding(result):
    old_from_store, during, (old_computed, new_computed) = result
    # Batches of other sizes: PyTorch's last bits may differ.
    np.testing.assert_allclose(during[0], new_computed, rtol=1e-5, atol=1e-6)  # what was decoded
    np.testing.assert_allclose(old_from_store[0], old_computed, rtol=1e-5, atol=1e-6)
    assert not np.allclose(old_computed, new_computed)


def _bad_bytes_after_a_stored_image(ctx):
    est = _fitted(ctx, cache=ctx.tmp_path / "store")
    est.transform([ctx.photos[0]])
    return est.transform([ctx.photos[0], b"not an image"])


def _stale_is_recomputed(result):
    before, after, fresh = result
    assert np.array_equal(after, fresh) and not np.array_equal(before, after)


def _unreadable_not_stored(ctx):
    bad = ctx.tmp_path / "bad.png"
    bad.write_bytes(b"GIF89a broken")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _fitted(ctx, cache=ctx.tmp_path / "s", on_error="nan").transform([str(bad), ctx.photos[0]])
    return out, len(EmbeddingStore(ctx.tmp_path / "s")), [str(w.message) for w in caught]


def _nan_row_nothing_stored(result):
    out, stored, messages = result
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all() and stored == 1
    assert len(messages) == 1 and "bad.png" in messages[0]


def _embed_failures(ctx):
    bad = ctx.tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff truncated")
    result = embed([str(bad), None, ctx.photos[0]], ctx.tmp_path / "o.parquet", extractor=tiny(), verbose=0)
    return result, read_embeddings(result.path)


def _error_rows(result):
    summary, (frame, X) = result
    assert summary.n_failed == 2 and summary.n_images == 3
    assert frame["error"].notna().tolist() == [True, True, False]
    assert np.isnan(X[:2]).all() and np.isfinite(X[2]).all()


class _Stopped(Exception):
    pass


def _parts_without_join(ctx, out, chunk_size):
    """Every part of ctx.photos written into out's partial folder, the join never run; returns the folder."""

    def stop(self):
        raise _Stopped

    with ctx.monkeypatch.context() as patch:
        patch.setattr(EmbeddingTableWriter, "finish", stop)
        with pytest.raises(_Stopped):
            embed(ctx.photos, out, extractor=tiny(), chunk_size=chunk_size, verbose=0)
    return str(out) + ".partial"


def _resumed_after_an_image_was_rewritten(ctx):
    folder = ctx.tmp_path / "images"
    paths = write_images(folder, 6, seed=7)
    out = ctx.tmp_path / "o.parquet"

    def stop(self):
        raise _Stopped

    with ctx.monkeypatch.context() as patch:
        patch.setattr(EmbeddingTableWriter, "finish", stop)
        with pytest.raises(_Stopped):
            embed(paths, out, extractor=tiny(), chunk_size=4, verbose=0)
    # Every row written; then photo 2 is rewritten in place (same name, other pixels and size).
    Image.fromarray(np.full((20, 24, 3), 200, np.uint8)).save(paths[2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = embed(paths, out, extractor=tiny(), chunk_size=4, verbose=0)
    return result, read_embeddings(out)[1], tiny().fit(paths).transform(paths), [str(w.message) for w in caught]


def _changed_row_embedded_again(result):
    summary, X, expected, messages = result
    assert (summary.n_resumed, summary.n_computed) == (5, 1)
    np.testing.assert_allclose(X, expected, rtol=1e-5, atol=1e-6)
    assert [m for m in messages if "1 image(s) changed since" in m and "img002.png" in m], messages


def _cleanup_cut_short_then_other_chunk_size(ctx):
    out = ctx.tmp_path / "o.parquet"
    partial = _parts_without_join(ctx, out, 4)
    os.remove(os.path.join(partial, "manifest.json"))
    os.remove(os.path.join(partial, "part-000000000000.parquet"))
    embed(ctx.photos, out, extractor=tiny(), chunk_size=5, verbose=0)
    return read_embeddings(out), tiny().fit(ctx.photos).transform(ctx.photos), ctx.photos, partial


def _resumed_out_of_order_other_chunk_size(ctx):
    out = ctx.tmp_path / "o.parquet"
    partial = _parts_without_join(ctx, out, 4)
    os.remove(os.path.join(partial, "part-000000000000.parquet"))
    os.remove(os.path.join(partial, "part-000000000008.parquet"))
    result = embed(ctx.photos, out, extractor=tiny(), chunk_size=5, verbose=0)
    assert (result.n_resumed, result.n_computed) == (4, 7)
    return read_embeddings(out), tiny().fit(ctx.photos).transform(ctx.photos), ctx.photos, partial


def _each_row_once_in_order(result):
    (frame, X), expected, photos, partial = result
    assert frame["path"].tolist() == photos
    np.testing.assert_array_equal(X, expected)
    assert not os.path.exists(partial)


def _part_outside_the_inputs(ctx):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = ctx.tmp_path / "o.parquet"
    partial = _parts_without_join(ctx, out, 4)
    part = os.path.join(partial, "part-000000000008.parquet")
    table = pq.read_table(part)
    shifted = pa.array([p + 100 for p in table.column("_position").to_pylist()], pa.int64())
    table = table.set_column(table.schema.get_field_index("_position"), "_position", shifted)
    pq.write_table(table, os.path.join(partial, "part-000000000108.parquet"))  # rows 8-10 are computed again
    os.remove(part)
    return embed(ctx.photos, out, extractor=tiny(), chunk_size=4, verbose=0)


def _filtered_by_pandas(ctx):
    import pandas as pd

    frame, X = read_embeddings(embed(ctx.photos, ctx.tmp_path / "o.parquet", extractor=tiny(), verbose=0).path)
    kept = pd.read_parquet(ctx.tmp_path / "o.parquet")
    keep = np.arange(len(kept)) % 3 != 1
    kept[keep].to_parquet(ctx.tmp_path / "filtered.parquet")
    return read_embeddings(ctx.tmp_path / "filtered.parquet"), (frame[keep], X[keep])


def _same_rows(result):
    (frame, X), (expected_frame, expected_X) = result
    assert frame["path"].tolist() == expected_frame["path"].tolist() and X.dtype == np.float32
    np.testing.assert_array_equal(X, expected_X)


def _lists_of_unequal_lengths(ctx):
    import pandas as pd

    frame = pd.DataFrame({"path": ["a", "b"], "label": [None, None], "error": [None, None]})
    frame["embedding"] = [np.zeros(3, np.float32), np.zeros(2, np.float32)]
    frame.to_parquet(ctx.tmp_path / "uneven.parquet")
    return read_embeddings(ctx.tmp_path / "uneven.parquet")


def _under_umask_077(ctx):
    previous = os.umask(0o077)
    try:
        path = embed(ctx.photos, ctx.tmp_path / "o.parquet", extractor=tiny(), verbose=0).path
    finally:
        os.umask(previous)
    return os.stat(path).st_mode & 0o777


def _private_table(mode):
    assert mode == 0o600, oct(mode)


def _read_the_partial_folder(ctx):
    return read_embeddings(_parts_without_join(ctx, ctx.tmp_path / "o.parquet", 4))


def _out_is_a_directory(ctx):
    (ctx.tmp_path / "folder").mkdir()
    return embed(ctx.photos, ctx.tmp_path / "folder", extractor=tiny(), verbose=0)


def _second_run_while_one_runs(ctx):
    out = ctx.tmp_path / "o.parquet"
    real, refused = EmbeddingTableWriter.write, []

    def write_then_start_another(self, *args):
        real(self, *args)
        if not refused:
            try:
                embed(ctx.photos, out, extractor=tiny(), chunk_size=4, verbose=0)
            except RuntimeError as error:
                refused.append(error)
            else:
                refused.append(None)

    with ctx.monkeypatch.context() as patch:
        patch.setattr(EmbeddingTableWriter, "write", write_then_start_another)
        result = embed(ctx.photos, out, extractor=tiny(), chunk_size=4, verbose=0)
    return refused, result, read_embeddings(out), tiny().fit(ctx.photos).transform(ctx.photos)


def _second_refused_first_finishes(result):
    refused, summary, (frame, X), expected = result
    assert refused[0] is not None, "the second run was not refused"
    message = str(refused[0])
    assert "in use by another embed() run" in message and f"pid {os.getpid()}" in message, message
    assert "o.parquet.partial" in message
    assert (summary.n_images, summary.n_computed) == (11, 11)
    np.testing.assert_array_equal(X, expected)


def _part_removed_during_the_run(ctx):
    out = ctx.tmp_path / "o.parquet"
    real = EmbeddingTableWriter.write

    def write_then_lose_the_first_part(self, *args):
        real(self, *args)
        first = os.path.join(self.partial, "part-000000000000.parquet")
        if os.path.exists(first) and args[0][0] == 4:
            os.remove(first)

    with ctx.monkeypatch.context() as patch:
        patch.setattr(EmbeddingTableWriter, "write", write_then_lose_the_first_part)
        return embed(ctx.photos, out, extractor=tiny(), chunk_size=4, verbose=0)


def _table_without_embeddings(ctx, embedding):
    import pandas as pd

    frame = pd.DataFrame({"path": ["a", "b"], "label": [None, None], "error": [None, None]})
    if embedding is not None:
        frame["embedding"] = embedding
    frame.to_parquet(ctx.tmp_path / "t.parquet")
    return read_embeddings(ctx.tmp_path / "t.parquet")


def _without_pyarrow(ctx):
    ctx.monkeypatch.setitem(sys.modules, "pyarrow", None)
    return embed(ctx.photos, ctx.tmp_path / "o.parquet", extractor=tiny(), verbose=0)


def _empty_folder(ctx):
    (ctx.tmp_path / "empty").mkdir()
    (ctx.tmp_path / "empty" / "notes.txt").write_text("no images")
    return embed(ctx.tmp_path / "empty", ctx.tmp_path / "o.parquet", verbose=0)


def _nan_chunk_alignment(ctx):
    items = [None] * 5 + ctx.photos[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        est = _fitted(ctx, on_error="nan")
        return np.concatenate(list(est.iter_transform(items, chunk_size=4))), est.transform(ctx.photos[:3])


def _all_missing_first_chunk(result):
    out, expected = result
    assert np.isnan(out[:5]).all() and np.array_equal(out[5:], expected)


def _flat_folder_with_a_name_not_utf8(ctx):
    # Found by the red team: embed() of a folder holding a file name that is
    # not valid UTF-8 failed at the same chunk on every rerun, so the run
    # could never finish (images directly in the folder, no class folders).
    folder = ctx.tmp_path / "flat"
    write_images(folder, 3)
    shutil.copyfile(folder / "img000.png", os.path.join(os.fsencode(folder), b"caf\xe9.png"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = embed(folder, ctx.tmp_path / "o.parquet", model="tiny_convnet", weights=None, verbose=0)
    return result, [str(w.message) for w in caught]


def _embedded_without_the_undecodable_name(result):
    done, messages = result
    assert done.n_images == 3 and done.n_failed == 0
    assert any("not valid UTF-8" in m and "caf\\xe9.png" in m for m in messages), messages


ROWS = [
    # Found by the red team: a stored vector with a flipped bit was served as it was.
    (
        "store-vector-bit-flipped",
        _damaged_row(lambda v: bytes([*v[:3], v[3] ^ 0x40, *v[4:]])),
        _recomputed_with_one_warning_then_repaired,
    ),
    # Found by the red team: a stored vector of NaN was served as it was.
    (
        "store-vector-nan",
        _damaged_row(lambda v: np.full(len(v) // 4, np.nan, np.float32).tobytes()),
        _recomputed_with_one_warning_then_repaired,
    ),
    # Found by the red team: a stored vector one float short raised an uncaught ValueError.
    ("store-vector-wrong-length", _damaged_row(lambda v: v[:-4]), _recomputed_with_one_warning_then_repaired),
    # Found by the red team: a stored vector of an odd byte count raised an uncaught ValueError.
    ("store-vector-odd-byte-count", _damaged_row(lambda v: v[:-1]), _recomputed_with_one_warning_then_repaired),
    # Found by the red team: a stored vector held as TEXT raised an uncaught TypeError.
    (
        "store-vector-stored-as-text",
        _damaged_row(lambda v: "0.5, 0.25, 0.125"),
        _recomputed_with_one_warning_then_repaired,
    ),
    # Found by the red team (with the checksum fix): a store of the layout without checksums
    # was read unchecked; it is now a store that cannot be used, left untouched (these two rows).
    (
        "store-of-an-older-format-warns-and-computes",
        _transform_with_an_old_format_store,
        _computed_with_one_warning("store of another format"),
    ),
    (
        "store-of-an-older-format-used-directly-raises",
        lambda ctx: _old_format_store(ctx).get("config", [b"a" * 32]),
        (OSError, "delete the file to start a new store"),
    ),
    # Found with the packed format 3: a format-2 store's raw vectors would be read as packed
    # ones; it is refused, untouched, as every store of another format.
    (
        "store-of-format-2-used-directly-raises",
        lambda ctx: _format_2_store(ctx).get("config", [b"a" * 32]),
        (OSError, "holds a store of another format (format 2"),
    ),
    (
        "store-merge-of-a-folder-without-a-store",
        lambda ctx: EmbeddingStore(ctx.tmp_path / "here").merge(ctx.tmp_path / "nothing"),
        (OSError, "holds no embedding store (no embeddings.sqlite)"),
    ),
    (
        "store-merge-of-format-2",
        lambda ctx: EmbeddingStore(ctx.tmp_path / "here").merge(_format_2_store(ctx)),
        (OSError, "holds a store of another format (format 2); this sktransfer merges stores of format 3 only"),
    ),
    # Found with the sktransfer store merge command: a file that is not a database raised sqlite3.DatabaseError,
    # which the command line would have printed as a traceback.
    ("store-merge-of-a-garbage-file", _merge_garbage, (OSError, "is not an embedding store that can be read")),
    ("store-merge-width-clash", _merge_width_clash, (ValueError, "registers configuration")),
    # Found with the command: the same store under another name (a symbolic link) was merged into itself.
    ("store-merge-into-itself-through-a-link", _merge_into_itself_through_a_link, (OSError, "into itself")),
    ("module-other-code-equal-weights", _modules_with_equal_weights, _own_embeddings),
    ("module-whose-source-cannot-be-read", _module_without_source, _not_stored_with_a_warning),
    (
        "cache-of-wrong-type",
        lambda ctx: _fitted(ctx, cache=3).transform(ctx.photos),
        (InvalidParameterError, "'cache' parameter"),
    ),
    (
        "store-folder-is-a-file-warns-and-computes",
        _store_in_a_file,
        _computed_with_one_warning("cannot open the embedding store"),
    ),
    (
        "store-database-is-garbage-warns-and-computes",
        _garbage_database,
        _computed_with_one_warning("file is not a database"),
    ),
    ("store-write-fails-midway-warns-and-computes", _store_write_fails, _computed_with_one_warning("disk I/O error")),
    ("store-used-directly-on-garbage-raises", _garbage_database_direct, (OSError, "file is not a database")),
    (
        "chunk-size-zero",
        lambda ctx: _fitted(ctx).iter_transform(ctx.photos, chunk_size=0),
        (ValueError, "chunk_size must be a positive integer, got 0"),
    ),
    (
        "chunk-size-float",
        lambda ctx: _fitted(ctx).iter_transform(ctx.photos, chunk_size=2.5),
        (ValueError, "chunk_size must be a positive integer, got 2.5"),
    ),
    (
        "iter-missing-with-raise",
        lambda ctx: _fitted(ctx).iter_transform([None, ctx.photos[0]]),
        (ValueError, "X[0] is missing"),
    ),
    ("iter-missing-with-nan-keeps-alignment", _nan_chunk_alignment, _all_missing_first_chunk),
    ("stale-file-under-same-name", _stale_file, _stale_is_recomputed),
    # Found by the red team: a file replaced after its hash, before its decoding, stored the new photo's
    # embedding under the old photo's key; the old photo, under any name, was then served the new one's.
    ("file-replaced-between-hashing-and-decoding", _file_replaced_after_hashing, _each_photo_its_own_embedding),
    # Found while fixing the row above: with a store and on_error="raise", an image after stored ones was named
    # by its position among those not found (X[0]), not in the input (X[1]).
    (
        "unreadable-bytes-after-a-stored-image-named-by-input-position",
        _bad_bytes_after_a_stored_image,
        (ImageLoadError, "cannot read image X[1]"),
    ),
    ("unreadable-image-not-stored", _unreadable_not_stored, _nan_row_nothing_stored),
    (
        "embed-not-a-folder",
        lambda ctx: embed(ctx.photos[0], ctx.tmp_path / "o.parquet", verbose=0),
        (NotADirectoryError, "is not a folder; pass a folder or a list of paths"),
    ),
    ("embed-empty-folder", _empty_folder, (ValueError, "holds no image file nor class sub-folders")),
    (
        "embed-arrays-in-memory",
        lambda ctx: embed([np.zeros((4, 4, 3), np.uint8)], ctx.tmp_path / "o.parquet", verbose=0),
        (TypeError, "embed() takes paths"),
    ),
    (
        "embed-chunk-size-zero",
        lambda ctx: embed(ctx.photos, ctx.tmp_path / "o.parquet", chunk_size=0, verbose=0),
        (ValueError, "chunk_size must be a positive integer"),
    ),
    # Found by the red team: a kill during the clean-up (manifest and one part removed, two parts left), rerun
    # with another chunk size, joined the leftover parts unchecked: rows twice, out of order.
    (
        "embed-rerun-after-cleanup-cut-short-other-chunk-size",
        _cleanup_cut_short_then_other_chunk_size,
        _each_row_once_in_order,
    ),
    # Found by the red team: parts were joined in the order of their names, so a resume with another chunk size
    # whose part held positions 0-3 and 8 put row 8 before rows 4-7.
    ("embed-resume-with-other-chunk-size-keeps-order", _resumed_out_of_order_other_chunk_size, _each_row_once_in_order),
    # Found by the red team: a resume after an image was rewritten in place kept its old row (the manifest
    # names the inputs by their paths only).
    ("embed-resume-after-an-image-was-rewritten", _resumed_after_an_image_was_rewritten, _changed_row_embedded_again),
    # Found by the red team: part files were joined without looking at their row positions.
    ("embed-part-outside-the-inputs", _part_outside_the_inputs, (ValueError, "row position 108, outside 0..10")),
    # Found by the red team: pd.read_parquet, filter, to_parquet, then read_embeddings raised
    # AttributeError: 'ListType' has no attribute 'list_size'.
    ("read-embeddings-written-back-by-pandas", _filtered_by_pandas, _same_rows),
    # Found by the red team: the same AttributeError, whatever the lists' lengths.
    ("read-embeddings-lists-of-unequal-lengths", _lists_of_unequal_lengths, (ValueError, "unequal lengths")),
    # Found by the red team: the table was forced to mode 0644 even under umask 077.
    ("embed-respects-the-umask", _under_umask_077, _private_table),
    # Found by the red team: pyarrow's error about the folder's files, nothing on what it is or how to finish it.
    (
        "read-embeddings-on-partial-folder",
        _read_the_partial_folder,
        (ValueError, "is the unfinished output of an embed() run, not a table; rerun embed() with the same"),
    ),
    # Found by the red team: every image was embedded, then the rename failed naming a temporary file.
    ("embed-out-is-a-directory", _out_is_a_directory, (IsADirectoryError, "/folder' is a directory; embed() writes")),
    # Found by the red team: the second run joined and removed the parts, and the first died with
    # FileNotFoundError on a part file.
    ("embed-second-run-while-one-runs", _second_run_while_one_runs, _second_refused_first_finishes),
    # Found by the red team (with the unchecked join above): a part lost during the run gave a table short of
    # its rows, without a word.
    ("embed-part-lost-during-the-run", _part_removed_during_the_run, (ValueError, "lacks 4 of 11 rows")),
    # Found by the red team (with the list column above): AttributeError on a null embedding too.
    (
        "read-embeddings-null-embedding",
        lambda ctx: _table_without_embeddings(ctx, [np.zeros(3, np.float32), None]),
        (ValueError, "row 1 has no embedding"),
    ),
    # Found by the red team (with the list column above): a table without the column gave KeyError 'embedding'.
    (
        "read-embeddings-without-embedding-column",
        lambda ctx: _table_without_embeddings(ctx, None),
        (ValueError, "has no 'embedding' column; it is not a table written by embed()"),
    ),
    ("embed-flat-folder-name-not-utf8", _flat_folder_with_a_name_not_utf8, _embedded_without_the_undecodable_name),
    ("embed-failures-in-error-column", _embed_failures, _error_rows),
    ("embed-without-pyarrow", _without_pyarrow, (ImportError, "pip install 'sktransfer[parquet]'")),
    (
        "read-embeddings-without-pyarrow",
        lambda ctx: (ctx.monkeypatch.setitem(sys.modules, "pyarrow", None), read_embeddings("x.parquet")),
        (ImportError, "sktransfer[parquet]"),
    ),
]


# ------------------------------------------------ special files, keys, URLs


def _fifo(ctx, name="x.jpg"):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(ctx.tmp_path / name)
    return str(ctx.tmp_path / name)


def _link_to_dev_zero(ctx, name="zero.jpg"):
    if sys.platform == "win32" or not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero on this platform")
    (ctx.tmp_path / name).symlink_to("/dev/zero")
    return str(ctx.tmp_path / name)


def _stored_transform_of(special):
    def make(ctx):
        path = special(ctx)
        est = _fitted(ctx, cache=ctx.tmp_path / "store")
        return returns_within(lambda: est.transform([ctx.photos[0], path]))

    return make


def _folder_with_dev_zero_nan(ctx):
    folder = ctx.tmp_path / "folder"
    paths = write_images(folder, 2)
    (folder / "zero.jpg").symlink_to(_link_to_dev_zero(ctx, "target"))
    items = sorted(paths + [str(folder / "zero.jpg")])
    est = _fitted(ctx, cache=ctx.tmp_path / "store", on_error="nan")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = returns_within(lambda: est.transform(items))
    return out, items, len(EmbeddingStore(ctx.tmp_path / "store")), [str(w.message) for w in caught]


def _nan_row_for_the_link_only(result):
    out, items, stored, messages = result
    bad = [i for i, item in enumerate(items) if item.endswith("zero.jpg")]
    assert np.isnan(out[bad]).all() and np.isfinite(np.delete(out, bad, axis=0)).all()
    assert stored == 2
    assert [m for m in messages if "zero.jpg" in m and "not a regular file (a character device)" in m], messages


def _no_key(result):
    assert result is None, result


def _with_exif_orientation(pixels, orientation):
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    encoded = io.BytesIO()
    image.save(encoded, "PNG", exif=exif.tobytes())
    return Image.open(encoded)


def _pixels(seed=0, size=(20, 12)):
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def _exif_rotated_and_upright(ctx):
    # The same pixels, once with EXIF orientation 6: the decoder rotates that one.
    upright = Image.fromarray(_pixels())
    rotated = _with_exif_orientation(_pixels(), 6)
    est = _fitted(ctx, cache=ctx.tmp_path)
    first = est.transform([upright])
    return (
        content_key(upright),
        content_key(rotated),
        est.transform([rotated]),
        tiny().fit(ctx.photos).transform([rotated]),
        first,
    )


def _own_keys_and_embeddings(result):
    upright_key, rotated_key, stored, computed, upright = result
    assert upright_key != rotated_key
    np.testing.assert_allclose(stored, computed, rtol=1e-5, atol=1e-6)
    assert not np.allclose(stored, upright)


def _palette_images(ctx):
    indices = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20) % 4
    images = []
    for colours in ([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255], [255, 255, 255, 0, 255, 255, 255, 0, 255, 9, 9, 9]):
        image = Image.fromarray(indices, mode="P")
        image.putpalette(colours)
        images.append(image)
    return images


def _without_file_system_package(package, url):
    def make(ctx):
        import importlib

        # The file system's own package is missing: fsspec imports it on
        # first use, so forget a file system class it may have imported.
        ctx.monkeypatch.setitem(sys.modules, package, None)
        ctx.monkeypatch.delitem(sys.modules, "fsspec.implementations.http", raising=False)
        known = importlib.import_module("fsspec.registry")._registry  # the module, not fsspec.registry's proxy
        ctx.monkeypatch.delitem(known, url.split("://")[0], raising=False)
        est = _fitted(ctx, cache=ctx.tmp_path / "store", on_error="nan")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = est.transform([ctx.photos[0], url])
        return out, content_key(url), [str(w.message) for w in caught]

    return make


def _nan_row_naming_the_url(url):
    def check(result):
        out, key, messages = result
        assert np.isfinite(out[0]).all() and np.isnan(out[1]).all() and key is None
        assert [m for m in messages if url in m], messages

    return check


_S3_URL = "s3://sktransfer-test-bucket/cat.jpg"
_HTTP_URL = "http://example.invalid/cat.jpg"

SPECIAL_FILE_ROWS = [
    # Found by the red team: content_key waited forever for the FIFO's writer.
    ("content-key-of-a-fifo", lambda ctx: returns_within(lambda: content_key(_fifo(ctx))), _no_key),
    (
        # Found by the red team: content_key hashed /dev/zero without end.
        "content-key-of-a-link-to-dev-zero",
        lambda ctx: returns_within(lambda: content_key(_link_to_dev_zero(ctx))),
        _no_key,
    ),
    (
        # Found by the red team: transform(cache=...) hung on the FIFO while hashing it.
        "fifo-given-to-transform-with-a-store",
        _stored_transform_of(_fifo),
        (ImageLoadError, "x.jpg: not a regular file (a FIFO)"),
    ),
    (
        # Found by the red team: transform(cache=...) hung hashing /dev/zero.
        "link-to-dev-zero-given-to-transform-with-a-store",
        _stored_transform_of(_link_to_dev_zero),
        (ImageLoadError, "zero.jpg: not a regular file (a character device)"),
    ),
    # Found by the red team: a folder with zero.jpg -> /dev/zero and a cache hung forever.
    ("folder-with-link-to-dev-zero-and-a-store-nan-policy", _folder_with_dev_zero_nan, _nan_row_for_the_link_only),
]

KEY_ROWS = [
    # Found by the red team: an EXIF-rotated PIL image was served the upright one's embedding.
    ("pil-exif-orientation-changes-the-key", _exif_rotated_and_upright, _own_keys_and_embeddings),
    (
        # Found while fixing the EXIF row: the raw palette indices were
        # hashed, so images that differ only in their palette shared a key.
        "pil-palette-changes-the-key",
        lambda ctx: [content_key(image) for image in _palette_images(ctx)],
        lambda keys: keys[0] != keys[1] or pytest.fail("one key for two palettes"),
    ),
]

URL_ROWS = [
    (
        # Found by the red team: with a store, content_key raised s3fs's
        # ImportError; without one the URL is a NaN row, as documented.
        "s3-url-without-s3fs-nan-policy-with-a-store",
        _without_file_system_package("s3fs", _S3_URL),
        _nan_row_naming_the_url(_S3_URL),
    ),
    (
        # Found by the red team: the same with http:// and aiohttp missing.
        "http-url-without-aiohttp-nan-policy-with-a-store",
        _without_file_system_package("aiohttp", _HTTP_URL),
        _nan_row_naming_the_url(_HTTP_URL),
    ),
]

ROWS += SPECIAL_FILE_ROWS + KEY_ROWS + URL_ROWS


def test_catalogue_is_large_and_ids_are_unique():
    ids = [row[0] for row in ROWS]
    assert len(ids) == len(set(ids)) and len(ROWS) >= 10


@pytest.mark.parametrize("row_id, make, expected", [pytest.param(i, m, e, id=i) for i, m, e in ROWS])
def test_bad_storage_input(row_id, make, expected, tmp_path, monkeypatch, photos):
    if row_id.startswith("embed-") and "without-pyarrow" not in row_id:
        pytest.importorskip("pyarrow")  # embed() needs the optional "parquet" extra
    ctx = SimpleNamespace(tmp_path=tmp_path, monkeypatch=monkeypatch, photos=photos)
    check_row(make, expected, ctx)
