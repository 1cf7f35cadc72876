"""Tests of sktransfer.datasets: image folders and the hymenoptera fetcher."""

import os
import urllib.error
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import Bunch

from sktransfer.datasets import (
    HYMENOPTERA_URL,
    IMAGE_EXTENSIONS,
    _base,
    _hymenoptera,
    fetch_hymenoptera,
    find_data_dir,
    get_data_home,
    load_image_folder,
)


def _touch(root, *relative_paths):
    """Create empty files (the folder loader never opens them)."""
    for relative in relative_paths:
        path = Path(root, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """No test sees the real ~/sktransfer_data or a SKTRANSFER_DATA copy."""
    # Outside tmp_path, which the folder tests use as the data root.
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SKTRANSFER_DATA", raising=False)
    # Nor the shared/data folder beside this checkout.
    monkeypatch.setattr(_base, "_checkout_data_home", lambda: None)
    return home


@pytest.fixture
def no_download(monkeypatch):
    """Fail loudly if a test would reach the network."""

    def refuse(url, destination):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(_hymenoptera, "_download_file", refuse)


def _fake_hymenoptera(data_home, folder_name="hymenoptera"):
    """A tiny copy: 2+1 train images (plus the .gif), 1+2 val images."""
    root = Path(data_home, folder_name)
    _touch(
        root,
        "train/ants/a1.jpg",
        "train/ants/a2.jpg",
        "train/ants/imageNotFound.gif",
        "train/bees/b1.jpg",
        "val/ants/a3.jpg",
        "val/bees/b2.jpg",
        "val/bees/b3.jpeg",
    )
    return root


# ------------------------------------------------------------ load_image_folder


def test_load_image_folder_order_labels_and_nesting(tmp_path):
    _touch(
        tmp_path,
        "dogs/z.png",
        "dogs/a.jpg",
        "cats/nested/deeper/c.JPG",
        "cats/b.webp",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped -> no warning
        paths, labels, class_names = load_image_folder(tmp_path, return_class_names=True)
    relative = [os.path.relpath(p, tmp_path) for p in paths]
    assert relative == [
        os.path.join("cats", "b.webp"),
        os.path.join("cats", "nested", "deeper", "c.JPG"),
        os.path.join("dogs", "a.jpg"),
        os.path.join("dogs", "z.png"),
    ]
    assert all(isinstance(p, str) for p in paths)
    assert isinstance(labels, np.ndarray) and labels.dtype.kind == "U"
    assert labels.tolist() == ["cats", "cats", "dogs", "dogs"]
    assert class_names == ["cats", "dogs"]


def test_load_image_folder_accepts_str_and_returns_two_values(tmp_path):
    _touch(tmp_path, "a/1.png")
    paths, labels = load_image_folder(str(tmp_path))
    assert paths == [str(tmp_path / "a" / "1.png")]
    assert labels.tolist() == ["a"]


def test_load_image_folder_ignores_hidden_files_and_folders(tmp_path):
    _touch(tmp_path, "a/1.png", "a/.hidden.png", "a/.thumbs/2.png", ".git/3.png", ".DS_Store")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths, labels, class_names = load_image_folder(tmp_path, return_class_names=True)
    assert [Path(p).name for p in paths] == ["1.png"]
    assert class_names == ["a"]


def test_load_image_folder_skips_non_images_with_warning(tmp_path):
    _touch(tmp_path, "a/1.jpg", "a/notes.txt", "b/2.png", "b/anim.gif")
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\) whose extension .*: a/notes\.txt, b/anim\.gif$"):
        paths, labels = load_image_folder(tmp_path)
    assert labels.tolist() == ["a", "b"]
    assert [Path(p).name for p in paths] == ["1.jpg", "2.png"]


def test_load_image_folder_warning_lists_only_a_few_examples(tmp_path):
    _touch(tmp_path, "a/1.jpg", *[f"a/{i}.txt" for i in range(5)])
    with pytest.warns(UserWarning, match=r"skipped 5 file\(s\).*0\.txt, a/1\.txt, a/2\.txt, \.\.\.$"):
        load_image_folder(tmp_path)


def test_load_image_folder_custom_extensions(tmp_path):
    _touch(tmp_path, "a/1.jpg", "a/2.gif")
    with pytest.warns(UserWarning, match=r"skipped 1 file.*\(\.gif\) in .*: a/1\.jpg"):
        paths, _ = load_image_folder(tmp_path, extensions="GIF")
    assert [Path(p).name for p in paths] == ["2.gif"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths, _ = load_image_folder(tmp_path, extensions=[".jpg", "gif"])
    assert len(paths) == 2
    with pytest.raises(ValueError, match="extensions is empty"):
        load_image_folder(tmp_path, extensions=[])


def test_default_extensions_match_torchvision():
    assert set(IMAGE_EXTENSIONS) == {
        ".jpg",
        ".jpeg",
        ".png",
        ".ppm",
        ".bmp",
        ".pgm",
        ".tif",
        ".tiff",
        ".webp",
    }


def test_load_image_folder_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"image folder not found: {missing}"):
        load_image_folder(missing)


def test_load_image_folder_file_instead_of_folder(tmp_path):
    _touch(tmp_path, "img.jpg")
    with pytest.raises(NotADirectoryError, match=r"img\.jpg is not a folder"):
        load_image_folder(tmp_path / "img.jpg")


def test_load_image_folder_without_class_folders(tmp_path):
    _touch(tmp_path, "1.jpg", "2.jpg")
    with pytest.raises(ValueError, match=r"no class sub-folders in .*holds 2 file\(s\) directly.*class_name"):
        load_image_folder(tmp_path)


def test_load_image_folder_empty_folder(tmp_path):
    with pytest.raises(ValueError, match=f"no class sub-folders in {tmp_path}; expected"):
        load_image_folder(tmp_path)


def test_load_image_folder_class_without_images(tmp_path):
    _touch(tmp_path, "a/1.jpg", "b/readme.txt")
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match=r"class folder\(s\) with no image files in .*\['b', 'c'\]"):
        load_image_folder(tmp_path)


# ------------------------------------------------------------ get_data_home


def test_get_data_home_order(monkeypatch, isolated_home, tmp_path):
    assert get_data_home() == str(isolated_home / "sktransfer_data")
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "env"))
    assert get_data_home() == str(tmp_path / "env")
    assert get_data_home(tmp_path / "arg") == str(tmp_path / "arg")
    assert get_data_home("~/x") == str(isolated_home / "x")
    assert not (isolated_home / "sktransfer_data").exists()


# ------------------------------------------------------------ fetch_hymenoptera


def test_fetch_hymenoptera_train_bunch(tmp_path, no_download):
    root = _fake_hymenoptera(tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 1 file.*imageNotFound\.gif"):
        data = fetch_hymenoptera(data_home=tmp_path)
    assert isinstance(data, Bunch)
    assert data.subset == "train"
    assert data.paths == [
        str(root / "train" / "ants" / "a1.jpg"),
        str(root / "train" / "ants" / "a2.jpg"),
        str(root / "train" / "bees" / "b1.jpg"),
    ]
    assert data.target.tolist() == ["ants", "ants", "bees"]
    assert data.target_names.tolist() == ["ants", "bees"]
    assert "ants" in data.DESCR and str(root) in data.DESCR
    assert "split" not in data


def test_fetch_hymenoptera_val_and_return_X_y(tmp_path, no_download):
    _fake_hymenoptera(tmp_path)
    paths, target = fetch_hymenoptera(data_home=tmp_path, subset="val", return_X_y=True)
    assert [Path(p).name for p in paths] == ["a3.jpg", "b2.jpg", "b3.jpeg"]
    assert target.tolist() == ["ants", "bees", "bees"]


def test_fetch_hymenoptera_all_has_split(tmp_path, no_download):
    _fake_hymenoptera(tmp_path)
    with pytest.warns(UserWarning, match="imageNotFound"):
        data = fetch_hymenoptera(data_home=tmp_path, subset="all")
    assert data.split.tolist() == ["train"] * 3 + ["val"] * 3
    assert data.target.tolist() == ["ants", "ants", "bees", "ants", "bees", "bees"]
    assert len(data.paths) == len(data.target) == len(data.split)


def test_fetch_hymenoptera_accepts_the_zip_folder_name(tmp_path, no_download):
    _fake_hymenoptera(tmp_path, folder_name="hymenoptera_data")
    paths, _ = fetch_hymenoptera(data_home=tmp_path, subset="val", return_X_y=True)
    assert all(f"{os.sep}hymenoptera_data{os.sep}" in p for p in paths)


def test_fetch_hymenoptera_search_order(tmp_path, monkeypatch, isolated_home, no_download):
    from_argument = _fake_hymenoptera(tmp_path / "arg")
    from_env = _fake_hymenoptera(tmp_path / "env")
    from_default = _fake_hymenoptera(isolated_home / "sktransfer_data")

    def root_of(**kwargs):
        paths, _ = fetch_hymenoptera(subset="val", return_X_y=True, **kwargs)
        return Path(paths[0]).parents[2]

    assert root_of() == from_default
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "env"))
    assert root_of() == from_env
    assert root_of(data_home=tmp_path / "arg") == from_argument
    # An argument without a copy falls back to the environment variable...
    assert root_of(data_home=tmp_path / "empty") == from_env
    # ...and, without that, to the default folder.
    monkeypatch.delenv("SKTRANSFER_DATA")
    assert root_of(data_home=tmp_path / "empty") == from_default


def test_fetch_hymenoptera_download_failure_says_what_to_do(tmp_path, monkeypatch):
    calls = []

    def offline(url, destination):
        calls.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(_hymenoptera, "_download_file", offline)
    data_home = tmp_path / "data"
    with pytest.raises(OSError) as info:
        fetch_hymenoptera(data_home=data_home)
    message = str(info.value)
    assert calls == [HYMENOPTERA_URL]
    assert "could not be downloaded" in message and "no network" in message
    assert f"download {HYMENOPTERA_URL} and unzip it in {data_home}" in message
    assert str(data_home / "hymenoptera_data" / "train") in message
    assert "SKTRANSFER_DATA" in message and "data_home=" in message
    assert "holds hymenoptera/" in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    # The staging folder is cleaned up; nothing that looks like a copy is left.
    assert list(data_home.iterdir()) == []


def test_fetch_hymenoptera_without_download(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "env"))
    with pytest.raises(OSError, match=r"was not found \(download_if_missing=False\)") as info:
        fetch_hymenoptera(data_home=tmp_path / "arg", download_if_missing=False)
    message = str(info.value)
    assert HYMENOPTERA_URL in message
    for looked_in in (tmp_path / "arg" / "hymenoptera", tmp_path / "env" / "hymenoptera_data"):
        assert str(looked_in) in message


def test_fetch_hymenoptera_hints_when_pointing_at_the_copy_itself(tmp_path, no_download):
    copy = _fake_hymenoptera(tmp_path)
    with pytest.raises(OSError, match=r"itself holds train/ and val/"):
        fetch_hymenoptera(data_home=copy, download_if_missing=False)


def _write_fake_archive(destination):
    with zipfile.ZipFile(destination, "w") as archive:
        for member in ("train/ants/a.jpg", "train/bees/b.jpg", "val/ants/c.jpg", "val/bees/d.jpg"):
            archive.writestr(f"hymenoptera_data/{member}", b"")


def test_fetch_hymenoptera_downloads_and_moves_into_place(tmp_path, monkeypatch):
    urls = []

    def fake_download(url, destination):
        urls.append(url)
        _write_fake_archive(destination)

    monkeypatch.setattr(_hymenoptera, "_download_file", fake_download)
    data_home = tmp_path / "data"
    data = fetch_hymenoptera(data_home=data_home, subset="val")
    assert urls == [HYMENOPTERA_URL]
    assert data.target.tolist() == ["ants", "bees"]
    assert sorted(os.listdir(data_home)) == ["hymenoptera"]  # staging removed
    assert data.paths[0] == str(data_home / "hymenoptera" / "val" / "ants" / "c.jpg")

    # A second call finds the copy and does not download again.
    fetch_hymenoptera(data_home=data_home, subset="val")
    assert len(urls) == 1


def test_fetch_hymenoptera_corrupt_archive(tmp_path, monkeypatch):
    def fake_download(url, destination):
        Path(destination).write_bytes(b"not a zip")

    monkeypatch.setattr(_hymenoptera, "_download_file", fake_download)
    with pytest.raises(OSError, match=r"could not be downloaded .*BadZipFile"):
        fetch_hymenoptera(data_home=tmp_path)
    assert not (tmp_path / "hymenoptera").exists()


def test_fetch_hymenoptera_invalid_subset(tmp_path, no_download):
    with pytest.raises(ValueError, match=r"subset must be one of \('train', 'val', 'all'\), got 'test'"):
        fetch_hymenoptera(data_home=tmp_path, subset="test")


@pytest.mark.real_data
def test_fetch_hymenoptera_real_counts(data_dir):
    with pytest.warns(UserWarning, match=r"skipped 1 file.*imageNotFound\.gif"):
        train = fetch_hymenoptera(data_home=data_dir, subset="train", download_if_missing=False)
    assert (train.target == "ants").sum() == 123
    assert (train.target == "bees").sum() == 121
    assert not any(p.endswith(".gif") for p in train.paths)

    val = fetch_hymenoptera(data_home=data_dir, subset="val", download_if_missing=False)
    assert (val.target == "ants").sum() == 70
    assert (val.target == "bees").sum() == 83
    assert val.target_names.tolist() == ["ants", "bees"]
    assert all(os.path.isfile(p) for p in train.paths + val.paths)


# ------------------------------------------------------------ find_data_dir


def test_find_data_dir_search_order(monkeypatch, isolated_home, tmp_path):
    arg, env, checkout = tmp_path / "arg", tmp_path / "env", tmp_path / "checkout"
    default = isolated_home / "sktransfer_data"
    for home in (arg, env, default, checkout):
        (home / "flowers").mkdir(parents=True)
    monkeypatch.setattr(_base, "_checkout_data_home", lambda: str(checkout))
    monkeypatch.setenv("SKTRANSFER_DATA", str(env))
    assert find_data_dir("flowers", data_home=arg) == str(arg)
    assert find_data_dir("flowers") == str(env)
    monkeypatch.delenv("SKTRANSFER_DATA")
    assert find_data_dir("flowers") == str(default)
    (default / "flowers").rmdir()
    assert find_data_dir("flowers") == str(checkout)


def test_find_data_dir_needs_every_name_in_one_folder(monkeypatch, isolated_home, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "flowers").mkdir(parents=True)
    (second / "flowers").mkdir(parents=True)
    (second / "hymenoptera").mkdir()
    monkeypatch.setenv("SKTRANSFER_DATA", str(second))
    assert find_data_dir("flowers", data_home=first) == str(first)
    assert find_data_dir("flowers", "hymenoptera", data_home=first) == str(second)
    # No names: the first folder that exists.
    assert find_data_dir(data_home=tmp_path / "absent") == str(second)


def test_find_data_dir_not_found(isolated_home, tmp_path):
    assert find_data_dir("flowers", data_home=tmp_path) is None
    with pytest.raises(FileNotFoundError) as info:
        find_data_dir("flowers", data_home=tmp_path, required=True)
    message = str(info.value)
    assert str(tmp_path) in message and str(isolated_home / "sktransfer_data") in message
    assert "SKTRANSFER_DATA" in message
    # A file with the data set's name is not a copy.
    (tmp_path / "flowers").write_bytes(b"")
    assert find_data_dir("flowers", data_home=tmp_path) is None


def test_checkout_data_home_is_beside_the_checkout(monkeypatch):
    monkeypatch.undo()  # the real function, not the isolating stub
    checkout = Path(_base.__file__).resolve().parents[2]
    expected = str(checkout.parent / "shared" / "data")
    assert (checkout / "pyproject.toml").is_file()  # the tests run from a checkout
    assert _base._checkout_data_home() == expected
    monkeypatch.setattr(_base, "_CHECKOUT_MARKER", "no-such-marker-file")
    assert _base._checkout_data_home() is None


def test_fetch_hymenoptera_searches_the_checkout_folder(monkeypatch, tmp_path, no_download):
    _fake_hymenoptera(tmp_path / "shared_data")
    monkeypatch.setattr(_base, "_checkout_data_home", lambda: str(tmp_path / "shared_data"))
    paths, _ = fetch_hymenoptera(subset="val", return_X_y=True)
    assert [Path(p).relative_to(tmp_path).as_posix() for p in paths] == [
        "shared_data/hymenoptera/val/ants/a3.jpg",
        "shared_data/hymenoptera/val/bees/b2.jpg",
        "shared_data/hymenoptera/val/bees/b3.jpeg",
    ]


# ------------------------------------------------------------ the test run's own folders


def test_the_test_run_writes_caches_under_its_temporary_folder(cache_root):
    from sktransfer.runtime import graph_folder

    assert graph_folder().is_relative_to(cache_root)
    assert Path(os.environ["TORCH_HOME"]).is_relative_to(cache_root)
    assert Path(os.environ["MPLCONFIGDIR"]).is_relative_to(cache_root)
    assert not cache_root.is_relative_to(Path.home())


@pytest.mark.real_data
def test_real_flowers_folder_loads_without_skipping_anything(data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no root files, links or non-images skipped
        paths, labels, class_names = load_image_folder(data_dir / "flowers", return_class_names=True)
    assert len(paths) == 4054
    assert class_names == sorted(set(labels.tolist())) and len(class_names) == 5
    # No nested folders in flowers/: each image's own folder is its label.
    assert [Path(p).parent.name for p in paths] == labels.tolist()
