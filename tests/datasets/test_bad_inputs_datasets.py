"""Catalogue of unusual folder layouts and bad arguments for sktransfer.datasets.

Each row builds a folder under ``tmp_path`` and states what must happen:
either an exception (type and a fragment of its message) or the documented
policy, as the exact relative paths and labels returned and the fragments of
the warnings raised (no fragments: no warning at all). One parametrized test
runs every row, so the next odd layout is one more row.
"""

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sktransfer.datasets import _base, find_data_dir, load_image_folder, load_image_splits


def _touch(root, *relative_paths):
    for relative in relative_paths:
        path = Path(root, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def _link(root, relative, target):
    path = Path(root, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


@dataclass
class Row:
    id: str
    build: object  # build(root, outside, monkeypatch) -> None
    raises: tuple = None  # (exception type, message fragment)
    # The policy: relative path -> label of every image returned, in order.
    images: dict = field(default_factory=dict)
    warns: tuple = ()  # fragments, one per expected warning
    call: object = None  # call(root) -> result; default load_image_folder(root)


def _hidden(root, outside, mp):
    _touch(root, "a/1.png", "a/.hidden.png", "a/._1.png", "a/.ipynb_checkpoints/2.png")
    _touch(root, ".DS_Store", ".git/3.png", "b/.DS_Store", "b/4.jpg")


def _uppercase(root, outside, mp):
    _touch(root, "a/A.JPG", "a/b.JPEG", "a/c.Png", "b/D.TIFF")


def _non_images(root, outside, mp):
    _touch(root, "a/1.jpg", "a/notes.txt", "a/anim.gif", "b/2.webp")


def _root_files(root, outside, mp):
    _touch(root, "a/1.jpg", "b/2.jpg", "stray.jpg", "README.txt")


def _nested(root, outside, mp):
    _touch(root, "a/x/y/z/1.jpg", "a/0.jpg", "b/sub/2.jpg")


def _empty_class(root, outside, mp):
    _touch(root, "a/1.jpg")
    (root / "b").mkdir()


def _only_hidden(root, outside, mp):
    _touch(root, "a/1.jpg", "b/.DS_Store", "b/.cache/2.jpg")


def _macosx_zip(root, outside, mp):
    _touch(root, "a/1.jpg", "__MACOSX/a/._1.jpg")


def _link_to_file(root, outside, mp):
    _touch(outside, "photo.jpg")
    _touch(root, "b/2.jpg")
    _link(root, "a/1.jpg", outside / "photo.jpg")


def _link_as_class(root, outside, mp):
    _touch(outside, "dogs/1.jpg", "dogs/2.jpg")
    _touch(root, "cats/3.jpg")
    _link(root, "dogs", outside / "dogs")


def _link_inside_class(root, outside, mp):
    _touch(outside, "more/2.jpg")
    _touch(root, "a/1.jpg")
    _link(root, "a/extra", outside / "more")


def _broken_link(root, outside, mp):
    _touch(root, "a/1.jpg")
    _link(root, "a/gone.jpg", outside / "deleted.jpg")


def _broken_link_at_root(root, outside, mp):
    _touch(root, "a/1.jpg")
    _link(root, "ghost", outside / "missing_class")


def _self_loop(root, outside, mp):
    _touch(root, "a/1.jpg")
    _link(root, "a/self.jpg", root / "a" / "self.jpg")


def _loop_to_ancestor(root, outside, mp):
    _touch(root, "a/1.jpg", "a/sub/2.jpg")
    _link(root, "a/sub/up", root / "a")


def _linked_twice(root, outside, mp):
    _touch(outside, "shared/2.jpg")
    _touch(root, "a/1.jpg")
    _link(root, "a/first", outside / "shared")
    _link(root, "a/second", outside / "shared")


def _folder_linked_into_another_class(root, outside, mp):
    _touch(root, "a/1.jpg", "b/2.jpg")
    _link(root, "a/blink", "../b")


def _file_linked_from_another_class(root, outside, mp):
    _touch(root, "a/1.jpg", "b/2.jpg")
    _link(root, "a/x.jpg", "../b/2.jpg")


def _hard_link_across_classes(root, outside, mp):
    _touch(root, "a/1.jpg", "b/2.jpg")
    os.link(root / "b" / "2.jpg", root / "a" / "h.jpg")


def _not_utf8(relative):
    # A name from bytes that are not UTF-8, as os.listdir gives it (lone surrogates).
    return os.fsdecode(relative)


def _undecodable_file(root, outside, mp):
    _touch(root, "a/1.jpg", "b/2.jpg", _not_utf8(b"a/caf\xe9.jpg"), _not_utf8(b"b/\xff\xfe/3.jpg"))


def _undecodable_class(root, outside, mp):
    _touch(root, "a/1.jpg", "b/2.jpg", _not_utf8(b"\xe9t\xe9/3.jpg"))


def _fifo(root, outside, mp):
    _touch(root, "a/1.jpg")
    os.mkfifo(root / "a" / "pipe.jpg")


def _case_classes(root, outside, mp):
    _touch(root, "Cats/1.jpg", "cats/2.jpg")


def _unreadable(root, outside, mp):
    _touch(root, "a/1.jpg", "a/locked/2.jpg")
    real_scandir = os.scandir

    def refuse(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    # A real chmod does not stop root, who runs some CI containers.
    mp.setattr(os, "scandir", refuse)


def _files_only(root, outside, mp):
    _touch(root, "1.jpg", "2.jpg")


def _empty_extensions(root, outside, mp):
    _touch(root, "a/1.jpg")


def _nothing(root, outside, mp):
    pass


def _split_layout(root, outside, mp):
    _touch(root, "training_set/cats/1.jpg", "training_set/dogs/2.jpg", "test_set/cats/3.jpg", "test_set/dogs/4.jpg")


def _two_val_folders(root, outside, mp):
    _split_layout(root, outside, mp)
    _touch(root, "val/cats/5.jpg", "valid/cats/6.jpg")


def _splits_and_classes(root, outside, mp):
    _split_layout(root, outside, mp)
    _touch(root, "birds/7.jpg")


def _class_only_in_test(root, outside, mp):
    _split_layout(root, outside, mp)
    _touch(root, "test_set/birds/7.jpg")


def _test_split_only(root, outside, mp):
    _touch(root, "test/cats/1.jpg", "test/dogs/2.jpg")


def _data_home_without_the_set(root, outside, mp):
    (root / "flowers").mkdir()
    mp.setattr(_base, "_checkout_data_home", lambda: None)
    mp.delenv("SKTRANSFER_DATA", raising=False)
    mp.setenv("HOME", str(outside))


ROWS = [
    Row("hidden files and folders ignored silently", _hidden, images={"a/1.png": "a", "b/4.jpg": "b"}),
    Row(
        "uppercase extensions accepted",
        _uppercase,
        images={"a/A.JPG": "a", "a/b.JPEG": "a", "a/c.Png": "a", "b/D.TIFF": "b"},
    ),
    Row(
        "non-image files skipped with a warning",
        _non_images,
        images={"a/1.jpg": "a", "b/2.webp": "b"},
        warns=("skipped 2 file(s) whose extension",),
    ),
    Row(
        "files beside the class folders skipped with a warning",
        _root_files,
        images={"a/1.jpg": "a", "b/2.jpg": "b"},
        warns=("skipped 2 file(s) directly in the root folder",),
    ),
    Row(
        "nested folders belong to their top class",
        _nested,
        images={"a/0.jpg": "a", "a/x/y/z/1.jpg": "a", "b/sub/2.jpg": "b"},
    ),
    Row("empty class folder", _empty_class, raises=(ValueError, "no image files in")),
    Row("class with only hidden files", _only_hidden, raises=(ValueError, "['b']")),
    Row("__MACOSX folder from a zip", _macosx_zip, raises=(ValueError, "['__MACOSX']")),
    Row("link to a file keeps the link's path", _link_to_file, images={"a/1.jpg": "a", "b/2.jpg": "b"}),
    Row(
        "link to a folder is a class",
        _link_as_class,
        images={"cats/3.jpg": "cats", "dogs/1.jpg": "dogs", "dogs/2.jpg": "dogs"},
    ),
    Row(
        "link to a folder inside a class is followed",
        _link_inside_class,
        images={"a/1.jpg": "a", "a/extra/2.jpg": "a"},
    ),
    Row(
        "broken link skipped with a warning",
        _broken_link,
        images={"a/1.jpg": "a"},
        warns=("broken or looping symbolic link(s)",),
    ),
    Row(
        "broken link at the root skipped with a warning",
        _broken_link_at_root,
        images={"a/1.jpg": "a"},
        warns=("1 broken or looping symbolic link(s)",),
    ),
    Row(
        "link to itself skipped with a warning",
        _self_loop,
        images={"a/1.jpg": "a"},
        warns=("a/self.jpg",),
    ),
    Row(
        "link loop to an ancestor lists each image once",
        _loop_to_ancestor,
        images={"a/1.jpg": "a", "a/sub/2.jpg": "a"},
        warns=("1 linked folder(s) already listed",),
    ),
    Row(
        "folder linked twice lists its images once",
        _linked_twice,
        images={"a/1.jpg": "a", "a/first/2.jpg": "a"},
        warns=("a/second",),
    ),
    # Found by the red team: a/blink -> ../b put b's images under both labels, without a warning.
    Row(
        "folder linked into another class is an error naming the link",
        _folder_linked_into_another_class,
        raises=(ValueError, "a/blink/2.jpg in class 'a' is b/2.jpg in class 'b' (through the link a/blink)"),
    ),
    Row(
        "file linked from another class is an error naming the link",
        _file_linked_from_another_class,
        raises=(ValueError, "a/x.jpg in class 'a' is b/2.jpg in class 'b' (through the link a/x.jpg)"),
    ),
    Row(
        "file hard-linked into another class is an error",
        _hard_link_across_classes,
        raises=(ValueError, "a/h.jpg in class 'a' is b/2.jpg in class 'b'. Remove the link"),
    ),
    # Found by the red team: a file name that is not valid UTF-8 was listed,
    # and embed then failed at the same chunk on every rerun.
    Row(
        "names that are not UTF-8 skipped with a warning showing their bytes",
        _undecodable_file,
        images={"a/1.jpg": "a", "b/2.jpg": "b"},
        warns=("skipped 2 file(s) or folder(s) whose name is not valid UTF-8 (rename them to include them)",),
    ),
    Row(
        "class folder named in other bytes than UTF-8 skipped with a warning",
        _undecodable_class,
        images={"a/1.jpg": "a", "b/2.jpg": "b"},
        warns=("\\xe9t\\xe9",),
    ),
    Row(
        "named pipe skipped with a warning",
        _fifo,
        images={"a/1.jpg": "a"},
        warns=("neither files nor folders",),
    ),
    Row(
        "class names differing in case are two classes",
        _case_classes,
        images={"Cats/1.jpg": "Cats", "cats/2.jpg": "cats"},
    ),
    Row("unreadable folder is an error", _unreadable, raises=(OSError, "cannot list the image folder")),
    Row("only files, no class folders", _files_only, raises=(ValueError, "holds 2 file(s) directly")),
    Row("empty root folder", _nothing, raises=(ValueError, "no class sub-folders")),
    Row(
        "root is a file",
        _files_only,
        raises=(NotADirectoryError, "is not a folder"),
        call=lambda root: load_image_folder(root / "1.jpg"),
    ),
    Row(
        "root does not exist",
        _nothing,
        raises=(FileNotFoundError, "image folder not found"),
        call=lambda root: load_image_folder(root / "absent"),
    ),
    Row(
        "empty extensions",
        _empty_extensions,
        raises=(ValueError, "extensions is empty"),
        call=lambda root: load_image_folder(root, extensions=()),
    ),
    Row(
        "split folders read as classes warn",
        _split_layout,
        images={
            "test_set/cats/3.jpg": "test_set",
            "test_set/dogs/4.jpg": "test_set",
            "training_set/cats/1.jpg": "training_set",
            "training_set/dogs/2.jpg": "training_set",
        },
        warns=("'test_set', 'training_set' in",),
    ),
    Row(
        "load_image_splits: training_set/ and test_set/ are the splits",
        _split_layout,
        images={"test_set/cats/3.jpg": "cats", "test_set/dogs/4.jpg": "dogs"},
        call=lambda root: load_image_splits(root)["test"],
    ),
    Row(
        "load_image_splits: two folders of one split",
        _two_val_folders,
        raises=(ValueError, "two val folders, 'val' and 'valid'"),
        call=load_image_splits,
    ),
    Row(
        "load_image_splits: a class folder beside the split folders",
        _splits_and_classes,
        raises=(ValueError, "and other folders ('birds')"),
        call=load_image_splits,
    ),
    Row(
        "load_image_splits: a class the training split lacks",
        _class_only_in_test,
        raises=(ValueError, "class folder(s) ['birds']"),
        call=load_image_splits,
    ),
    Row(
        "load_image_splits: no training split",
        _test_split_only,
        raises=(ValueError, "no training split folder (train/, training_set/...)"),
        call=load_image_splits,
    ),
    Row(
        "load_image_splits: a folder without splits",
        _nested,
        raises=(ValueError, "read by load_image_folder"),
        call=load_image_splits,
    ),
    Row(
        "find_data_dir: a data set no folder holds",
        _data_home_without_the_set,
        raises=(FileNotFoundError, "no folder holding flowers/ and hymenoptera/"),
        call=lambda root: find_data_dir("flowers", "hymenoptera", data_home=root, required=True),
    ),
    Row(
        "find_data_dir: a name that is not a string",
        _nothing,
        raises=(TypeError, "non-empty strings, got 3"),
        call=lambda root: find_data_dir(3, data_home=root),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input(row, tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    row.build(root, outside, monkeypatch)
    call = row.call or load_image_folder
    if row.raises is not None:
        exception, fragment = row.raises
        with pytest.raises(exception) as info:
            call(root)
        assert fragment in str(info.value)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths, labels = call(root)
    found = {os.path.relpath(p, root): label for p, label in zip(paths, labels.tolist())}
    assert list(found.items()) == list(row.images.items())
    messages = [str(w.message) for w in caught]
    assert len(messages) == len(row.warns), messages
    for fragment, message in zip(row.warns, messages):
        assert fragment in message
