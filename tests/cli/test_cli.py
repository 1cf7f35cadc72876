"""The command line: fit, predict and embed, run through ``main(argv)`` (and once as a process, for Ctrl-C)."""

import csv
import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import TINY, run_cli, split_folder, write_images  # noqa: F401 -- fixtures

from sktransfer.cli._model_file import TRUSTED_TYPES, load_model
from sktransfer.storage import read_embeddings

pytest.importorskip("skops")
pytest.importorskip("pyarrow")


def test_fit_uses_the_folders_own_split_and_predict_reads_the_saved_model(run_cli, split_folder, tmp_path):
    fitted = run_cli("fit", split_folder, "-o", "model.skops", *TINY, "--views", "1")
    assert fitted.status == 0, fitted.err
    assert "training on 8 images (dark 4, light 4)" in fitted.out
    assert "validation accuracy:" in fitted.out and "(8 images, the test folder)" in fitted.out
    model = load_model(tmp_path / "model.skops")
    assert type(model).__name__ == "FrozenFeatureClassifier"

    test_images = sorted(glob.glob(str(split_folder / "test_set" / "*" / "*.png")))
    expected = model.predict_proba(test_images)
    written = run_cli("predict", "model.skops", split_folder / "test_set", "-o", "predictions.csv")
    assert written.status == 0, written.err
    with open(tmp_path / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["path"] for row in rows] == test_images
    assert [row["label"] for row in rows] == model.classes_[expected.argmax(axis=1)].tolist()
    np.testing.assert_allclose([float(row["probability"]) for row in rows], expected.max(axis=1), atol=1e-4)

    printed = run_cli("predict", "model.skops", test_images[0], test_images[-1])
    assert printed.status == 0, printed.err
    lines = printed.out.splitlines()
    assert lines[0].split() == ["path", "label", "probability"]
    assert [line.split()[0] for line in lines[1:]] == [test_images[0], test_images[-1]]
    # Aligned: the label column starts at the same place on every line.
    assert len({line.index(" " + line.split()[1]) for line in lines}) == 1


def test_fit_holds_out_a_stratified_share_without_split_folders(run_cli, tmp_path):
    folder = write_images(tmp_path / "flat", {"dark": 4, "light": 4})
    fitted = run_cli("fit", folder, "-o", "m.skops", *TINY, "--views", "0", "--val-size", "0.5")
    assert fitted.status == 0, fitted.err
    assert "training on 4 images (dark 2, light 2)" in fitted.out
    assert "(4 images, 50% held out)" in fitted.out


def test_fit_finetune_saves_a_model_that_predict_loads_trusting_only_sktransfer_types(run_cli, split_folder):
    fitted = run_cli("fit", split_folder, "-o", "ft.skops", *TINY, "--finetune", "--epochs", "1", "-q")
    assert fitted.status == 0, fitted.err
    assert "validation accuracy:" in fitted.out
    import skops.io as sio

    # The fine-tuner saves as plain data and tensors: skops lists its own class, and the frozen
    # recipe's (the same --model) when the internal check kept it; predict trusts them.
    untrusted = sio.get_untrusted_types(file="ft.skops")
    assert "sktransfer.finetune._classifier.FineTuneClassifier" in untrusted
    assert set(untrusted) <= set(TRUSTED_TYPES)
    predicted = run_cli("predict", "ft.skops", split_folder / "test_set")
    assert predicted.status == 0, predicted.err
    assert len(predicted.out.splitlines()) == 1 + 8


def test_embed_rerun_returns_at_once_and_another_configuration_needs_overwrite(run_cli, tmp_path):
    folder = write_images(tmp_path / "flat", {"dark": 2, "light": 2})
    first = run_cli("embed", folder, "-o", "e.parquet", *TINY, "-q")
    assert first.status == 0, first.err
    assert "4 embedded now" in first.out
    written = os.stat(tmp_path / "e.parquet").st_mtime_ns

    again = run_cli("embed", folder, "-o", "e.parquet", *TINY, "-q")
    assert again.status == 0, again.err
    assert "is up to date: 4 rows" in again.out
    assert os.stat(tmp_path / "e.parquet").st_mtime_ns == written

    other = run_cli("embed", folder, "-o", "e.parquet", *TINY, "--layer", "stage2", "-q")
    assert other.status == 2
    assert "computed with other settings" in other.err and "--overwrite" in other.err
    assert read_embeddings(tmp_path / "e.parquet")[1].shape == (4, 64)  # untouched

    replaced = run_cli("embed", folder, "-o", "e.parquet", *TINY, "--layer", "stage2", "--overwrite", "-q")
    assert replaced.status == 0, replaced.err
    assert read_embeddings(tmp_path / "e.parquet")[1].shape == (4, 32)


def test_store_merge_gathers_the_stores_of_two_machines_for_the_next_run(run_cli, tmp_path, monkeypatch):
    from sktransfer.feature_extraction._streaming import EmbeddingLoop
    from sktransfer.storage import EmbeddingStore

    # Two machines each embed their share, each into a store of its own.
    shares = {"one": write_images(tmp_path / "one", {"dark": 2, "light": 1}, seed=1)}
    shares["two"] = write_images(tmp_path / "two", {"dark": 1, "light": 2}, seed=2)
    for name, folder in shares.items():
        done = run_cli("embed", folder, "-o", f"{name}.parquet", *TINY, "--cache", f"store_{name}", "-q")
        assert done.status == 0, done.err
    merged = run_cli("store", "merge", "all", "store_one", "store_two")
    assert merged.status == 0, merged.err
    assert merged.out.splitlines() == [
        "store_one: 3 rows, 3 new",
        "store_two: 3 rows, 3 new",
        "all holds 6 rows of 1 configuration(s)",
    ]
    assert len(EmbeddingStore(tmp_path / "store_one")) == len(EmbeddingStore(tmp_path / "store_two")) == 3

    # The next run, on either share, finds every image in the merged store: it decodes none.
    decoded, original = [], EmbeddingLoop._decoder

    def recording(self, items, *args):
        decoded.extend(items)
        return original(self, items, *args)

    monkeypatch.setattr(EmbeddingLoop, "_decoder", recording)
    for name, folder in shares.items():
        rerun = run_cli("embed", folder, "-o", f"{name}_again.parquet", *TINY, "--cache", "all", "-q")
        assert rerun.status == 0, rerun.err
        np.testing.assert_array_equal(
            read_embeddings(tmp_path / f"{name}_again.parquet")[1], read_embeddings(tmp_path / f"{name}.parquet")[1]
        )
    assert decoded == []

    again = run_cli("store", "merge", "all", "store_one", "store_two")
    assert again.status == 0 and "store_one: 3 rows, 0 new" in again.out and "all holds 6 rows" in again.out


@pytest.mark.slow
def test_ctrl_c_during_embed_says_how_many_rows_are_saved_and_the_rerun_resumes(tmp_path):
    # Enough images that the run cannot end before the signal lands, even
    # when this process is scheduled late on a loaded machine (with 300 it
    # once finished first and exited 0).
    folder = write_images(tmp_path / "many", {"dark": 500, "light": 500}, size=64)
    out = tmp_path / "e.parquet"
    command = [sys.executable, "-m", "sktransfer", "embed", str(folder), "-o", str(out), *TINY, "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [*command, "--chunk-size", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    while not glob.glob(str(tmp_path / "e.parquet.partial" / "part-*.parquet")):
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    saved = int(err.split("interrupted: ")[1].split(" rows saved; rerun to resume")[0])
    assert 2 <= saved < 1000

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{1000 - saved} embedded now, {saved} from an interrupted run" in rerun.stdout


def test_predict_prints_labels_alone_for_a_classifier_without_probabilities(run_cli, tmp_path):
    from sklearn.svm import LinearSVC

    from sktransfer import FrozenFeatureClassifier, PretrainedFeatureExtractor
    from sktransfer.cli._model_file import save_model

    folder = write_images(tmp_path / "flat", {"dark": 3, "light": 3})
    paths = sorted(glob.glob(str(folder / "*" / "*.png")))
    labels = [os.path.basename(os.path.dirname(path)) for path in paths]
    extractor = PretrainedFeatureExtractor(model="tiny_convnet", weights=None)
    model = FrozenFeatureClassifier(extractor=extractor, classifier=LinearSVC(), n_views=0).fit(paths, labels)
    save_model(model, tmp_path / "svc.skops")
    outcome = run_cli("predict", "svc.skops", folder, "-o", "p.csv")
    assert outcome.status == 0, outcome.err
    with open(tmp_path / "p.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["label"] for row in rows] == model.predict(paths).tolist()
    assert {row["probability"] for row in rows} == {""}


def test_ctrl_c_during_finetuning_saves_nothing_and_exits_130(run_cli, split_folder, tmp_path, monkeypatch):
    # skorch ends a fit quietly at Ctrl-C, keeping what it trained; the command line must not
    # then save a half-trained model as if training had finished.
    from sktransfer.finetune import _callbacks

    def interrupt_at_epoch_2(self, net, **kwargs):
        if len(net.history) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_callbacks.PhaseSwitch, "on_epoch_begin", interrupt_at_epoch_2)
    outcome = run_cli("fit", split_folder, "-o", "ft.skops", *TINY, "--finetune", "--epochs", "3", "-q")
    assert outcome.status == 130
    assert outcome.err == "sktransfer fit: interrupted: no model saved\n"
    assert not (tmp_path / "ft.skops").exists()
