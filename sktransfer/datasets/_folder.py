"""Read a ``root/class_name/**/image.ext`` folder into paths and labels."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Literal, overload

import numpy as np
from numpy.typing import NDArray

from .._typing import StrPath
from ._split_names import split_of

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

# The extensions torchvision's ImageFolder accepts, so both read the same files.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# How many skipped files the warning lists by name.
_N_SKIPPED_EXAMPLES = 3


def _is_hidden(name):
    return name.startswith(".")


def _is_undecodable(name):
    # os.scandir decodes a name that is not valid UTF-8 with lone surrogates
    # (os.fsdecode's surrogateescape); such a path cannot be printed, stored
    # as text or written to Parquet, so every later step would fail on it.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(relative_path):
    """A relative path as text that can be printed: undecodable bytes as ``\\xNN``."""
    return os.fsencode(relative_path).decode("utf-8", "backslashreplace")


def _normalise_extensions(extensions):
    """Lower-case extensions with a leading dot, as a tuple."""
    if extensions is None:
        return IMAGE_EXTENSIONS
    if isinstance(extensions, str):
        extensions = [extensions]
    normalised = tuple((ext if ext.startswith(".") else "." + ext).lower() for ext in extensions)
    if not normalised:
        raise ValueError("extensions is empty; pass None for the default image extensions")
    return normalised


class _Skipped:
    """What a folder scan left out, by reason, so each reason is reported once."""

    REASONS = {
        "extension": "file(s) whose extension is not an accepted image extension",
        "root_file": "file(s) directly in the root folder, outside any class folder",
        "broken_link": "broken or looping symbolic link(s)",
        "repeated_folder": "linked folder(s) already listed (a link loop or a second link to one folder)",
        "special": "entries that are neither files nor folders (pipes, sockets, devices)",
        "undecodable": "file(s) or folder(s) whose name is not valid UTF-8 (rename them to include them)",
    }

    def __init__(self):
        self.paths = {reason: [] for reason in self.REASONS}

    def warn(self, root, extensions):
        for reason, paths in self.paths.items():
            if not paths:
                continue
            examples = ", ".join(_printable(os.path.relpath(p, root)) for p in paths[:_N_SKIPPED_EXAMPLES])
            more = ", ..." if len(paths) > _N_SKIPPED_EXAMPLES else ""
            detail = f" ({' '.join(extensions)})" if reason == "extension" else ""
            warnings.warn(
                f"skipped {len(paths)} {self.REASONS[reason]}{detail} in {root}: {examples}{more}",
                UserWarning,
                stacklevel=3,
            )


def _folder_identity(path):
    status = os.stat(path)
    return status.st_dev, status.st_ino


def _sorted_entries(folder):
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as exc:
        # os.walk would skip an unreadable folder silently, losing its images.
        raise OSError(f"cannot list the image folder {folder}: {exc}") from exc


def _listing(folder, skipped):
    """The sub-folder and file entries of `folder`, sorted by name.

    Hidden entries are left out silently; broken links, special files and
    names that are not valid UTF-8 are left out and recorded in `skipped`.
    """
    subfolders, files = [], []
    for entry in _sorted_entries(folder):
        if _is_hidden(entry.name):
            continue
        if _is_undecodable(entry.name):
            skipped.paths["undecodable"].append(entry.path)
            continue
        # is_dir/is_file follow symbolic links: a class folder assembled from
        # links is common when splitting a data set without copying it. A link
        # that loops onto itself raises ELOOP here rather than answering False.
        try:
            if entry.is_dir():
                subfolders.append(entry)
                continue
            if entry.is_file():
                files.append(entry)
                continue
        except OSError:
            pass
        skipped.paths["broken_link" if entry.is_symlink() else "special"].append(entry.path)
    return subfolders, files


def _class_folder_files(class_dir, skipped):
    """All non-hidden files under `class_dir`, at any depth, sorted by path.

    Links to folders are followed, but each real folder is listed once, so a
    link back to an ancestor cannot loop and a folder linked twice cannot
    duplicate its images.
    """
    found, seen, pending = [], set(), [class_dir]
    while pending:
        folder = pending.pop()
        identity = _folder_identity(folder)
        if identity in seen:
            skipped.paths["repeated_folder"].append(folder)
            continue
        seen.add(identity)
        subfolders, files = _listing(folder, skipped)
        found.extend(entry.path for entry in files)
        # Depth first in name order: of two links to one folder, the first
        # by name is the one listed.
        pending.extend(reversed([entry.path for entry in subfolders]))
    return sorted(found)


def _link_on_the_way(path, root):
    """The first symbolic link among the folders and file from `root` to `path`, relative to `root`, or None."""
    relative = os.path.relpath(path, root)
    parts = relative.split(os.sep)
    for depth in range(1, len(parts) + 1):
        if os.path.islink(os.path.join(root, *parts[:depth])):
            return os.path.join(*parts[:depth])
    return None


def _check_one_label_per_file(root, paths, labels):
    """Refuse files reached under two class folders (through a link), naming the link.

    Files are compared by device and inode, so a hard link is caught too.
    """
    first_seen, clashes = {}, []
    for path, label in zip(paths, labels):
        status = os.stat(path)
        identity = (status.st_dev, status.st_ino)
        seen_path, seen_label = first_seen.setdefault(identity, (path, label))
        if seen_label != label:
            clashes.append((seen_path, seen_label, path, label))
    if not clashes:
        return
    described = []
    for seen_path, seen_label, path, label in clashes[:_N_SKIPPED_EXAMPLES]:
        links = [link for link in (_link_on_the_way(seen_path, root), _link_on_the_way(path, root)) if link]
        through = f" (through the link {' and '.join(_printable(link) for link in links)})" if links else ""
        described.append(
            f"{_printable(os.path.relpath(seen_path, root))} in class {seen_label!r} is "
            f"{_printable(os.path.relpath(path, root))} in class {label!r}{through}"
        )
    more = "; ..." if len(clashes) > _N_SKIPPED_EXAMPLES else ""
    raise ValueError(
        f"{len(clashes)} image(s) in {root} are reached under two class folders, which would give one image "
        f"two labels: {'; '.join(described)}{more}. Remove the link, or link to a folder outside {root}"
    )


def _warn_split_names(root, class_names):
    """Warn when top-level folders are named like data splits: read as classes, they teach the wrong task."""
    splits = [name for name in class_names if split_of(name) is not None]
    if splits:
        warnings.warn(
            f"folder(s) {', '.join(map(repr, splits))} in {root} have the names of data splits but are read as "
            f"classes, so a classifier would learn to tell the splits apart; if they are splits, read them "
            f"with load_image_splits({root!r})",
            UserWarning,
            stacklevel=3,
        )


@overload
def load_image_folder(
    path: StrPath, *, extensions: str | Sequence[str] | None = ..., return_class_names: Literal[False] = ...
) -> tuple[list[str], NDArray[np.str_]]: ...


@overload
def load_image_folder(
    path: StrPath, *, extensions: str | Sequence[str] | None = ..., return_class_names: Literal[True]
) -> tuple[list[str], NDArray[np.str_], list[str]]: ...


def load_image_folder(
    path: StrPath, *, extensions: str | Sequence[str] | None = None, return_class_names: bool = False
) -> tuple[list[str], NDArray[np.str_]] | tuple[list[str], NDArray[np.str_], list[str]]:
    """List the images of a folder laid out as ``path/class_name/image.ext``.

    The layout is the one of torchvision's ``ImageFolder``: every non-hidden
    sub-folder of `path` is a class, and every image file below it (at any
    depth) is a sample of that class. The order is deterministic: classes
    sorted by name, files sorted by path within a class.

    Unusual entries are handled as follows; nothing is left out without a
    warning except hidden entries:

    - hidden files and folders (name starting with ``"."``: ``.DS_Store``,
      ``.ipynb_checkpoints``, ``._photo.jpg``) are ignored silently, at every
      level, including hidden folders directly in `path`;
    - files whose extension is not accepted (compared case-insensitively, so
      ``.JPG`` is an image) are skipped with a warning;
    - files directly in `path`, beside the class folders, belong to no class
      and are skipped with a warning;
    - symbolic links to files and to folders are followed; a path keeps the
      link's name (the label is the folder the link sits in); each real folder
      is listed once per class, so a link loop or a second link to the same
      folder is skipped with a warning instead of repeating images;
    - a file reached under two class folders (``a/blink -> ../b``, a link to
      a file of another class, or a hard link) is an error naming the link:
      it would give one image two contradictory labels, and neither label
      can be chosen for the user (keeping both would also put one image in
      training and test folds at once);
    - a file or folder whose name is not valid UTF-8 is skipped with a
      warning that shows its bytes: such a path cannot be printed, stored as
      text or written to Parquet, so ``embed`` and the stores could never
      finish a run that holds it;
    - broken links, links that loop onto themselves, pipes, sockets and
      devices are skipped with a warning;
    - a class folder left with no image (empty, or only hidden or skipped
      files) is an error naming it, as in torchvision: a class with no
      samples is almost always a mistake in the layout;
    - a folder that cannot be listed is an error (it is not skipped);
    - top-level folders named like data splits (``train``, ``val``,
      ``test_set``...: :func:`load_image_splits` lists the names) are read
      as classes, with a warning: a folder split into ``training_set/`` and
      ``test_set/`` is read by :func:`load_image_splits` instead.

    Parameters
    ----------
    path : str or os.PathLike
        The root folder.
    extensions : str or sequence of str or None, default=None
        Accepted file extensions, case-insensitive. None means
        ``.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp``
        (:data:`IMAGE_EXTENSIONS`), torchvision's list.
    return_class_names : bool, default=False
        Also return the sorted class names.

    Returns
    -------
    paths : list of str
        Image file paths, `path` joined with the relative path.
    labels : numpy.ndarray of str
        Class name of each image, aligned with `paths`.
    class_names : list of str
        Sorted class names; only when `return_class_names` is True.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    NotADirectoryError
        If `path` is not a folder.
    ValueError
        If `path` has no class sub-folders, a class folder holds no image,
        or an image is reached under two class folders.
    OSError
        If a folder below `path` cannot be listed.

    Warns
    -----
    UserWarning
        Once per reason when entries were skipped (see above); says how many
        and names a few.

    Examples
    --------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> for name in ("cats/a.jpg", "cats/b.PNG", "dogs/c.jpg", "dogs/.DS_Store"):
    ...     os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
    ...     open(os.path.join(root, name), "wb").close()
    >>> paths, labels = load_image_folder(root)
    >>> [os.path.relpath(p, root) for p in paths]
    ['cats/a.jpg', 'cats/b.PNG', 'dogs/c.jpg']
    >>> labels.tolist()
    ['cats', 'cats', 'dogs']
    """
    root = os.path.expanduser(os.fspath(path))
    if not os.path.exists(root):
        raise FileNotFoundError(f"image folder not found: {root}")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root} is not a folder; expected a folder with one sub-folder per class")
    extensions = _normalise_extensions(extensions)

    skipped = _Skipped()
    class_folders, root_files = _listing(root, skipped)
    class_names = [entry.name for entry in class_folders]
    skipped.paths["root_file"].extend(entry.path for entry in root_files)
    if not class_names:
        n_files = len(skipped.paths["root_file"])
        found = f" (it holds {n_files} file(s) directly)" if n_files else ""
        raise ValueError(
            f"no class sub-folders in {root}{found}; expected the layout "
            f"{os.path.join(root, 'class_name', 'image.jpg')}"
        )

    _warn_split_names(root, class_names)

    paths, labels, empty_classes = [], [], []
    for class_name in class_names:
        n_before = len(paths)
        for file_path in _class_folder_files(os.path.join(root, class_name), skipped):
            if file_path.lower().endswith(extensions):
                paths.append(file_path)
                labels.append(class_name)
            else:
                skipped.paths["extension"].append(file_path)
        if len(paths) == n_before:
            empty_classes.append(class_name)

    if empty_classes:
        raise ValueError(
            f"class folder(s) with no image files in {root}: {empty_classes}; "
            f"accepted extensions: {' '.join(extensions)}"
        )
    _check_one_label_per_file(root, paths, labels)
    skipped.warn(root, extensions)

    labels = np.asarray(labels, dtype=str)
    if return_class_names:
        return paths, labels, class_names
    return paths, labels


def list_image_files(path: StrPath, *, extensions: str | Sequence[str] | None = None) -> list[str]:
    """The image files directly in a folder (no class folders), sorted by name.

    Entries are treated as :func:`load_image_folder` treats them: hidden
    ones are ignored silently; files of another extension, names that are
    not valid UTF-8, broken links and special files (pipes, sockets,
    devices) are skipped with one warning per reason; sub-folders are left
    out.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    extensions : str or sequence of str or None, default=None
        Accepted file extensions, case-insensitive; None:
        :data:`IMAGE_EXTENSIONS`.

    Returns
    -------
    list of str
        ``path`` joined with each file name.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("b.jpg", "a.PNG", ".hidden.jpg"):
    ...     open(os.path.join(folder, name), "wb").close()
    >>> [os.path.basename(p) for p in list_image_files(folder)]
    ['a.PNG', 'b.jpg']
    """
    root = os.fspath(path)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root!r} is not a folder")
    extensions = _normalise_extensions(extensions)
    skipped = _Skipped()
    _, files = _listing(root, skipped)
    paths = []
    for entry in files:
        if entry.name.lower().endswith(extensions):
            paths.append(entry.path)
        else:
            skipped.paths["extension"].append(entry.path)
    skipped.warn(root, extensions)
    return paths
