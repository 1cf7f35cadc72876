"""Catalogue of bad command lines: each ends with one line on stderr naming the problem, and an exit status.

Exit status 2 for a usage error (a bad option, a missing path, an output
that would be overwritten), 1 for a failure on the data; never a
traceback. Each row is (id, fault, expected): ``fault(ctx)`` runs the
command line and returns its outcome.
"""

import functools
import pickle
from types import SimpleNamespace

import pytest
from _catalogue import Policy, Raises, assert_catalogue, check_row
from cli_helpers import TINY, run_cli, write_images  # noqa: F401 -- run_cli is a fixture

from sktransfer.feature_extraction import embed

pytest.importorskip("skops")
pytest.importorskip("pyarrow")


def one_line_error(status, fragment):
    def check(ctx, outcome):
        assert outcome.status == status, outcome
        assert "Traceback" not in outcome.err
        assert outcome.err.count("\n") == 1, outcome.err
        assert fragment in outcome.err, outcome.err

    return Policy(check, f"exit {status}, one line naming: {fragment}")


def _flat(ctx):
    return write_images(ctx.tmp / "flat", {"dark": 2, "light": 2})


def _fitted_model(ctx):
    outcome = ctx.run("fit", _flat(ctx), "-o", "m.skops", *TINY, "--views", "0", "--val-size", "0")
    assert outcome.status == 0, outcome.err
    return ctx.tmp / "m.skops"


def fit_missing_folder(ctx):
    return ctx.run("fit", ctx.tmp / "absent", *TINY)


def embed_missing_folder(ctx):
    return ctx.run("embed", ctx.tmp / "absent", *TINY)


def unknown_command(ctx):
    return ctx.run("train", ctx.tmp)


def val_size_out_of_range(ctx):
    return ctx.run("fit", _flat(ctx), "--val-size", "1.5")


def batch_size_not_a_number(ctx):
    return ctx.run("embed", _flat(ctx), "--batch-size", "many")


def fit_over_an_existing_model(ctx):
    (ctx.tmp / "model.skops").write_bytes(b"earlier work")
    return ctx.run("fit", _flat(ctx), "-o", "model.skops", *TINY)


def views_with_finetune(ctx):
    return ctx.run("fit", _flat(ctx), "--finetune", "--views", "2", *TINY)


def a_class_too_small_to_hold_out(ctx):
    folder = write_images(ctx.tmp / "small", {"dark": 1, "light": 3})
    return ctx.run("fit", folder, *TINY, "--views", "0")


def predict_missing_model(ctx):
    return ctx.run("predict", ctx.tmp / "absent.skops", ctx.tmp)


def predict_a_file_that_is_not_a_model(ctx):
    (ctx.tmp / "notes.skops").write_text("not a model")
    return ctx.run("predict", ctx.tmp / "notes.skops", _flat(ctx))


def predict_a_model_holding_an_untrusted_type(ctx):
    import skops.io as sio

    sio.dump({"payload": functools.partial(print, "hello")}, ctx.tmp / "bad.skops")
    return ctx.run("predict", ctx.tmp / "bad.skops", _flat(ctx))


def predict_a_pickle(ctx):
    (ctx.tmp / "model.pkl").write_bytes(pickle.dumps({"a": 1}))
    return ctx.run("predict", ctx.tmp / "model.pkl", _flat(ctx))


def predict_a_missing_image(ctx):
    model = _fitted_model(ctx)
    return ctx.run("predict", model, ctx.tmp / "flat" / "dark" / "0.png", ctx.tmp / "absent.png")


def predict_over_an_existing_csv(ctx):
    model = _fitted_model(ctx)
    (ctx.tmp / "p.csv").write_text("earlier\n")
    return ctx.run("predict", model, ctx.tmp / "flat", "-o", "p.csv")


def embed_over_another_configuration(ctx):
    folder = _flat(ctx)
    assert ctx.run("embed", folder, "-o", "e.parquet", *TINY, "-q").status == 0
    return ctx.run(
        "embed", folder, "-o", "e.parquet", "--model", "tiny_convnet", "--weights", "none", "--layer", "stage2"
    )


def embed_over_other_images(ctx):
    folder = _flat(ctx)
    assert ctx.run("embed", folder, "-o", "e.parquet", *TINY, "-q").status == 0
    write_images(folder, {"dark": 3})
    return ctx.run("embed", folder, "-o", "e.parquet", *TINY, "-q")


def _lite0_weights(path, seed):
    import torch

    from sktransfer.backbones._efficientnet_lite import build_efficientnet_lite

    torch.manual_seed(seed)
    torch.save(build_efficientnet_lite("efficientnet_lite0").state_dict(), path)
    return path


def embed_over_a_rewritten_weights_file(ctx):
    # A rerun of a finished table first compares the weights file's stat
    # signature, not its bytes: its size and modification time set back
    # must not make other weights pass for the same.
    import os

    folder, weights = _flat(ctx), _lite0_weights(ctx.tmp / "lite0.pth", seed=0)
    command = ("embed", folder, "-o", "e.parquet", "--model", "efficientnet_lite0", "--weights", weights, "-q")
    assert ctx.run(*command).status == 0
    before = os.stat(weights)
    _lite0_weights(weights, seed=1)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    return ctx.run(*command)


def embed_over_another_model(ctx):
    folder = _flat(ctx)
    assert ctx.run("embed", folder, "-o", "e.parquet", *TINY, "-q").status == 0
    return ctx.run("embed", folder, "-o", "e.parquet", "--model", "efficientnet_lite0", "--weights", "none", "-q")


def embed_over_a_file_embed_did_not_write(ctx):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2]}), ctx.tmp / "e.parquet")
    return ctx.run("embed", _flat(ctx), "-o", "e.parquet", *TINY, "-q")


def embed_if_exists_misspelt(ctx):
    return embed(_flat(ctx), ctx.tmp / "e.parquet", model="tiny_convnet", weights=None, verbose=0, if_exists="keep")


def _store(folder, rows, width=2, description=None):
    """A store in `folder` holding `rows` keys (bytes) of one configuration."""
    import numpy as np

    from sktransfer.storage import EmbeddingStore

    store = EmbeddingStore(folder)
    config = store.register(description or {"model": "m"}, width)
    if rows:
        store.put(config, rows, np.ones((len(rows), width), np.float32))
    store.close()
    return folder


def merge_a_missing_store(ctx):
    return ctx.run("store", "merge", "out", _store(ctx.tmp / "a", [b"a" * 32]), ctx.tmp / "absent")


def merge_a_folder_without_a_store(ctx):
    (ctx.tmp / "empty").mkdir()
    return ctx.run("store", "merge", "out", ctx.tmp / "empty")


def merge_an_empty_database_file(ctx):
    (ctx.tmp / "empty").mkdir()
    (ctx.tmp / "empty" / "embeddings.sqlite").write_bytes(b"")
    return ctx.run("store", "merge", "out", ctx.tmp / "empty")


def merge_a_file(ctx):
    (ctx.tmp / "notes.txt").write_text("not a store")
    return ctx.run("store", "merge", "out", ctx.tmp / "notes.txt")


def merge_into_a_file(ctx):
    (ctx.tmp / "out").write_text("not a store")
    return ctx.run("store", "merge", "out", _store(ctx.tmp / "a", [b"a" * 32]))


def merge_the_output_into_itself(ctx):
    out, other = _store(ctx.tmp / "a", [b"a" * 32]), _store(ctx.tmp / "b", [b"b" * 32])
    return ctx.run("store", "merge", out, other, ctx.tmp / "." / "a")


def merge_a_store_of_another_format(ctx):
    import sqlite3
    from contextlib import closing

    (ctx.tmp / "old").mkdir()
    with closing(sqlite3.connect(ctx.tmp / "old" / "embeddings.sqlite")) as db, db:
        db.execute("CREATE TABLE embeddings (config TEXT, content BLOB, vector BLOB, checksum INTEGER)")
        db.execute("PRAGMA user_version=2")
    return ctx.run("store", "merge", "out", ctx.tmp / "old")


def merge_a_file_that_is_not_a_database(ctx):
    (ctx.tmp / "bad").mkdir()
    (ctx.tmp / "bad" / "embeddings.sqlite").write_bytes(b"\x01not sqlite" * 100)
    return ctx.run("store", "merge", "out", ctx.tmp / "bad")


def merge_stores_that_disagree_on_a_width(ctx):
    _store(ctx.tmp / "a", [b"a" * 32], width=2)
    _store(ctx.tmp / "b", [b"b" * 32], width=3)
    return ctx.run("store", "merge", "out", ctx.tmp / "a", ctx.tmp / "b")


def merge_without_inputs(ctx):
    return ctx.run("store", "merge", "out")


def store_without_a_subcommand(ctx):
    return ctx.run("store")


def nothing_merged_when_a_later_input_is_bad(ctx):
    outcome = merge_a_missing_store(ctx)
    return outcome, (ctx.tmp / "out").exists()


def _refused_before_writing(ctx, result):
    outcome, out_exists = result
    one_line_error(2, "store folder not found").check(ctx, outcome)
    assert not out_exists and outcome.out == ""


ROWS = [
    ("fit-missing-folder", fit_missing_folder, one_line_error(2, "image folder not found")),
    ("embed-missing-folder", embed_missing_folder, one_line_error(2, "is not a folder")),
    ("unknown-command", unknown_command, one_line_error(2, "invalid choice: 'train'")),
    ("val-size-out-of-range", val_size_out_of_range, one_line_error(2, "'1.5' is not in [0, 1)")),
    ("batch-size-not-a-number", batch_size_not_a_number, one_line_error(2, "'many' is neither 'auto'")),
    ("fit-over-an-existing-model", fit_over_an_existing_model, one_line_error(2, "pass --overwrite")),
    ("views-with-finetune", views_with_finetune, one_line_error(1, "--views is for the frozen-features")),
    ("class-too-small-to-hold-out", a_class_too_small_to_hold_out, one_line_error(1, "cannot hold out 20%")),
    ("predict-missing-model", predict_missing_model, one_line_error(2, "model file not found")),
    ("predict-not-a-model", predict_a_file_that_is_not_a_model, one_line_error(1, "is not a model file")),
    ("predict-untrusted-type", predict_a_model_holding_an_untrusted_type, one_line_error(1, "functools.partial")),
    ("predict-a-pickle", predict_a_pickle, one_line_error(1, "is not a model file")),
    ("predict-missing-image", predict_a_missing_image, one_line_error(2, "image not found")),
    ("predict-over-an-existing-csv", predict_over_an_existing_csv, one_line_error(2, "'p.csv' exists")),
    ("embed-over-another-configuration", embed_over_another_configuration, one_line_error(2, "layer: None")),
    ("embed-over-a-rewritten-weights-file", embed_over_a_rewritten_weights_file, one_line_error(2, "weights: ")),
    ("embed-over-another-model", embed_over_another_model, one_line_error(2, "model: 'tiny_convnet' -> ")),
    ("embed-over-other-images", embed_over_other_images, one_line_error(2, "holds embeddings of other images")),
    ("embed-over-a-foreign-file", embed_over_a_file_embed_did_not_write, one_line_error(2, "not a table written")),
    ("embed-if-exists-misspelt", embed_if_exists_misspelt, Raises(ValueError, "if_exists must be one of")),
    ("store-merge-missing-store", merge_a_missing_store, one_line_error(2, "store folder not found")),
    ("store-merge-folder-without-a-store", merge_a_folder_without_a_store, one_line_error(2, "holds no embedding")),
    ("store-merge-empty-database-file", merge_an_empty_database_file, one_line_error(2, "or an empty one")),
    ("store-merge-a-file", merge_a_file, one_line_error(2, "is not a folder; pass the folder of a store")),
    ("store-merge-into-a-file", merge_into_a_file, one_line_error(2, "OUT is the folder of a store")),
    ("store-merge-output-as-input", merge_the_output_into_itself, one_line_error(2, "name it once, as OUT")),
    ("store-merge-another-format", merge_a_store_of_another_format, one_line_error(1, "another format (format 2")),
    ("store-merge-not-a-database", merge_a_file_that_is_not_a_database, one_line_error(1, "file is not a database")),
    ("store-merge-width-clash", merge_stores_that_disagree_on_a_width, one_line_error(1, "with 3 features")),
    ("store-merge-without-inputs", merge_without_inputs, one_line_error(2, "arguments are required: IN")),
    ("store-without-a-subcommand", store_without_a_subcommand, one_line_error(2, "required: {merge}")),
    (
        "store-merge-checks-every-input-first",
        nothing_merged_when_a_later_input_is_bad,
        Policy(_refused_before_writing, "a bad input after a good one: exit 2 and OUT not created"),
    ),
]


def test_catalogue_size():
    assert_catalogue(ROWS, minimum=32)


@pytest.mark.parametrize(("fault", "expected"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_command_line(fault, expected, run_cli, tmp_path):
    check_row(fault, expected, SimpleNamespace(tmp=tmp_path, run=run_cli))


def test_a_row_fails_when_the_error_is_a_traceback():
    outcome = SimpleNamespace(status=1, err="Traceback (most recent call last):\n  ...\nValueError: x\n")
    with pytest.raises(AssertionError):
        one_line_error(1, "x").check(None, outcome)
