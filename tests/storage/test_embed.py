"""embed(): a folder or a list of paths to a resumable Parquet table, and its command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from storage_helpers import decode_count, tiny, write_images  # noqa: F401 (fixtures)

from sktransfer import embed
from sktransfer.storage import read_embeddings

pq = pytest.importorskip("pyarrow.parquet")  # the optional "parquet" extra

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, HERE])}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes")
    write_images(root / "cats", 5, seed=1)
    write_images(root / "dogs", 4, seed=2)
    return root


def test_folder_of_classes_gives_paths_labels_and_the_transform(folder, tmp_path):
    result = embed(folder, tmp_path / "out.parquet", extractor=tiny(), verbose=0)
    frame = pd.read_parquet(result.path)
    assert list(frame.columns) == ["path", "label", "error", "embedding"]
    assert frame["label"].tolist() == ["cats"] * 5 + ["dogs"] * 4
    assert frame["error"].isna().all()
    X = np.stack(frame["embedding"])
    assert X.dtype == np.float32
    assert np.array_equal(X, tiny().fit(frame["path"]).transform(frame["path"]))
    assert (result.n_images, result.n_computed, result.n_resumed, result.n_failed) == (9, 9, 0, 0)
    assert not os.path.exists(str(tmp_path / "out.parquet") + ".partial")


def test_settings_travel_in_the_schema_metadata(folder, tmp_path):
    path = embed(folder, tmp_path / "out.parquet", model="tiny_convnet", weights=None, layer="stage2", verbose=0).path
    settings = json.loads(pq.read_schema(path).metadata[b"sktransfer"])
    assert settings["model"] == "tiny_convnet" and settings["layer"] == "stage2"


def test_flat_folder_has_null_labels(tmp_path):
    write_images(tmp_path / "flat", 3)
    frame, X = read_embeddings(embed(tmp_path / "flat", tmp_path / "o.parquet", extractor=tiny(), verbose=0).path)
    assert frame["label"].isna().all() and X.shape == (3, 64)


def test_failed_images_are_reported_in_the_error_column(folder, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"<html/>")
    paths = [str(next((folder / "cats").iterdir())), str(bad), None, str(tmp_path / "gone.png")]
    result = embed(paths, tmp_path / "o.parquet", extractor=tiny(), verbose=0)
    frame, X = read_embeddings(result.path)
    assert result.n_failed == 3
    assert frame["error"].isna().tolist() == [True, False, False, False]
    assert "not an image file" in frame["error"][1] and "missing value" in frame["error"][2]
    assert frame["error"][3] == "file not found"
    assert np.isfinite(X[0]).all() and np.isnan(X[1:]).all()
    assert frame["path"].isna().tolist() == [False, False, True, False]


def test_the_extractor_passed_in_is_not_changed(folder, tmp_path):
    est = tiny()
    embed(folder, tmp_path / "o.parquet", extractor=est, verbose=0)
    assert est.on_error == "raise" and not hasattr(est, "backbone_")


_KILLED = """
import os, sys
from sktransfer import embed
from sktransfer.storage import EmbeddingTableWriter
from storage_helpers import tiny

real = EmbeddingTableWriter.write
written = []

def write_then_die(*args):
    real(*args)
    written.append(1)
    if len(written) == 2:
        os._exit(9)

EmbeddingTableWriter.write = write_then_die
embed(sys.argv[1], sys.argv[2], extractor=tiny(), chunk_size=4, verbose=0)
"""


def test_a_killed_run_resumes_and_recomputes_only_the_rest(folder, tmp_path, decode_count):
    out = tmp_path / "o.parquet"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED, str(folder), str(out)], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == 9, killed.stderr
    parts = ["part-000000000000.parquet", "part-000000000004.parquet"]
    assert not out.exists() and sorted(os.listdir(str(out) + ".partial")) == ["lock", "manifest.json", *parts]
    result = embed(folder, out, extractor=tiny(), chunk_size=4, verbose=0)
    assert (result.n_resumed, result.n_computed) == (8, 1) and len(decode_count) == 1
    frame, X = read_embeddings(out)
    assert np.array_equal(X, tiny().fit(frame["path"]).transform(frame["path"]))
    assert frame["label"].tolist() == ["cats"] * 5 + ["dogs"] * 4


_WAITING = """
import sys, time
from sktransfer import embed
from sktransfer.storage import EmbeddingTableWriter
from storage_helpers import tiny

real = EmbeddingTableWriter.write

def write_then_wait(*args):
    real(*args)
    print("one part written", flush=True)
    time.sleep(300)

EmbeddingTableWriter.write = write_then_wait
embed(sys.argv[1], sys.argv[2], extractor=tiny(), chunk_size=4, verbose=0)
"""


def test_a_second_run_is_refused_until_the_first_process_ends(folder, tmp_path):
    out = tmp_path / "o.parquet"
    first = subprocess.Popen(
        [sys.executable, "-c", _WAITING, str(folder), str(out)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout.readline().strip() == "one part written"
        with pytest.raises(
            RuntimeError, match=rf"o\.parquet\.partial' is in use by another embed\(\) run \(pid {first.pid}\)"
        ):
            embed(folder, out, extractor=tiny(), chunk_size=4, verbose=0)
    finally:
        first.kill()
        first.wait(timeout=60)
        first.stdout.close()
    result = embed(folder, out, extractor=tiny(), chunk_size=4, verbose=0)  # the lock went with the process
    assert (result.n_resumed, result.n_computed) == (4, 5)
    assert read_embeddings(out)[0]["label"].tolist() == ["cats"] * 5 + ["dogs"] * 4


def test_a_directory_as_out_is_refused_before_any_image_is_read(folder, tmp_path, decode_count):
    with pytest.raises(IsADirectoryError, match="is a directory; embed.. writes one Parquet file"):
        embed(folder, tmp_path, extractor=tiny(), verbose=0)
    assert decode_count == [] and os.listdir(tmp_path) == []


def test_the_table_mode_follows_the_umask(folder, tmp_path):
    previous = os.umask(0o022)
    try:
        path = embed(folder, tmp_path / "o.parquet", extractor=tiny(), verbose=0).path
    finally:
        os.umask(previous)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_a_partial_output_of_other_settings_is_refused(folder, tmp_path):
    out = tmp_path / "o.parquet"
    os.makedirs(str(out) + ".partial")
    with open(os.path.join(str(out) + ".partial", "manifest.json"), "w") as file:
        json.dump({"inputs": "other", "configuration": {}}, file)
    with pytest.raises(ValueError, match="unfinished output of an embed.. run on other images or settings"):
        embed(folder, out, extractor=tiny(), verbose=0)


def test_command_line_module_writes_the_table(folder, tmp_path):
    out = tmp_path / "cli.parquet"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sktransfer",
            "embed",
            str(folder),
            "-o",
            str(out),
            "--model",
            "tiny_convnet",
            "--weights",
            "none",
            "--batch-size",
            "4",
            "-q",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 9 rows" in done.stdout
    frame, X = read_embeddings(out)
    assert np.array_equal(X, tiny(engine="auto").fit(frame["path"]).transform(frame["path"]))


def test_command_line_main_in_process(folder, tmp_path, capsys):
    from sktransfer.__main__ import main

    assert (
        main(
            [
                "embed",
                str(folder),
                "-o",
                str(tmp_path / "m.parquet"),
                "--model",
                "tiny_convnet",
                "--weights",
                "None",
                "--layer",
                "stage1",
                "-q",
            ]
        )
        == 0
    )
    assert "wrote 9 rows" in capsys.readouterr().out
    assert read_embeddings(tmp_path / "m.parquet")[1].shape == (9, 16)


def test_command_line_needs_a_command(capsys):
    from sktransfer.__main__ import main

    assert main([]) == 2  # a usage error: one line, no SystemExit out of main
    err = capsys.readouterr().err
    assert "required: {fit,predict,embed,store}" in err and err.count("\n") == 1


def test_embed_reuses_a_store(folder, tmp_path, decode_count):
    embed(folder, tmp_path / "a.parquet", extractor=tiny(cache=tmp_path / "store"), verbose=0)
    decode_count.clear()
    result = embed(folder, tmp_path / "b.parquet", extractor=tiny(), cache=tmp_path / "store", verbose=0)
    assert decode_count == [] and result.n_computed == 9  # computed by this call, from the store
    assert np.array_equal(read_embeddings(tmp_path / "a.parquet")[1], read_embeddings(tmp_path / "b.parquet")[1])
    embed(folder, tmp_path / "c.parquet", model="tiny_convnet", weights=None, cache=tmp_path / "store", verbose=0)
    embed(folder, tmp_path / "d.parquet", model="tiny_convnet", weights=None, cache=tmp_path / "store", verbose=0)
    assert len(decode_count) == 9  # the second call found every image


class _Stopped(Exception):
    pass


def _interrupted_before_the_join(paths, out, monkeypatch):
    """embed() of `paths` cut short once every part is written (the join never runs)."""
    from sktransfer.storage import EmbeddingTableWriter

    def stop(self):
        raise _Stopped

    with monkeypatch.context() as patch:
        patch.setattr(EmbeddingTableWriter, "finish", stop)
        with pytest.raises(_Stopped):
            embed(paths, out, extractor=tiny(), chunk_size=4, verbose=0)
    return str(out) + ".partial"


def test_a_resume_embeds_again_a_file_whose_times_changed_only(tmp_path, monkeypatch, decode_count):
    # The same bytes, a later modification time: taken as changed (a stat cannot tell), embedded again alone.
    paths = write_images(tmp_path / "images", 6, seed=3)
    _interrupted_before_the_join(paths, tmp_path / "o.parquet", monkeypatch)
    info = os.stat(paths[1])
    os.utime(paths[1], ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    decode_count.clear()
    with pytest.warns(UserWarning, match=r"1 image\(s\) changed since .*img001.png"):
        result = embed(paths, tmp_path / "o.parquet", extractor=tiny(), chunk_size=4, verbose=0)
    assert (result.n_resumed, result.n_computed) == (5, 1) and decode_count == [paths[1]]
    # Embedded alone, in a batch of one: PyTorch's last bits may differ.
    np.testing.assert_allclose(
        read_embeddings(result.path)[1], tiny().fit(paths).transform(paths), rtol=1e-5, atol=1e-6
    )


def test_a_resume_unchanged_reads_no_image_and_keeps_every_row(tmp_path, monkeypatch, decode_count):
    paths = write_images(tmp_path / "images", 6, seed=3)
    _interrupted_before_the_join(paths, tmp_path / "o.parquet", monkeypatch)
    decode_count.clear()
    result = embed(paths, tmp_path / "o.parquet", extractor=tiny(), chunk_size=4, verbose=0)
    assert (result.n_resumed, result.n_computed) == (6, 0) and decode_count == []


def test_parts_without_file_identities_are_embedded_again(tmp_path, monkeypatch):
    # A part written before the rows kept their files' identities cannot vouch for them.
    paths = write_images(tmp_path / "images", 6, seed=3)
    partial = _interrupted_before_the_join(paths, tmp_path / "o.parquet", monkeypatch)
    first = os.path.join(partial, "part-000000000000.parquet")
    pq.write_table(pq.read_table(first).drop_columns(["_file"]), first)
    with pytest.warns(UserWarning, match=r"4 image\(s\) changed since"):
        result = embed(paths, tmp_path / "o.parquet", extractor=tiny(), chunk_size=4, verbose=0)
    assert (result.n_resumed, result.n_computed) == (2, 4)
    assert np.array_equal(read_embeddings(result.path)[1], tiny().fit(paths).transform(paths))
