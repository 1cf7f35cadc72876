"""Read a ``root/class_name/**/image.ext`` folder into paths and labels."""

import os
import warnings

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

# The extensions torchvision's ImageFolder accepts, so both read the same files.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# How many skipped files the warning lists by name.
_N_SKIPPED_EXAMPLES = 3


def _is_hidden(name):
    return name.startswith(".")


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


def _class_folder_files(class_dir):
    """All non-hidden files under `class_dir`, recursively, sorted."""
    found = []
    # followlinks: a class folder assembled from symlinks is common when
    # splitting a data set without copying it.
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        dirnames[:] = sorted(name for name in dirnames if not _is_hidden(name))
        found.extend(
            os.path.join(dirpath, name) for name in sorted(filenames) if not _is_hidden(name)
        )
    return sorted(found)


def load_image_folder(path, *, extensions=None, return_class_names=False):
    """List the images of a folder laid out as ``path/class_name/image.ext``.

    The layout is the one of torchvision's ``ImageFolder``: every non-hidden
    sub-folder of `path` is a class, and every image file below it (at any
    depth) is a sample of that class. Files whose extension is not an image
    extension are skipped with a warning; hidden files and folders (name
    starting with ``"."``) are ignored silently. The order is deterministic:
    classes sorted by name, files sorted by path within a class.

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
        If `path` has no class sub-folders, or a class folder holds no image.

    Warns
    -----
    UserWarning
        When files were skipped because of their extension; says how many
        and names a few.

    Examples
    --------
    >>> paths, labels = load_image_folder("hymenoptera/train")  # doctest: +SKIP
    >>> labels[:2]  # doctest: +SKIP
    array(['ants', 'ants'], dtype='<U4')
    """
    root = os.path.expanduser(os.fspath(path))
    if not os.path.exists(root):
        raise FileNotFoundError(f"image folder not found: {root}")
    if not os.path.isdir(root):
        raise NotADirectoryError(
            f"{root} is not a folder; expected a folder with one sub-folder per class"
        )
    extensions = _normalise_extensions(extensions)

    with os.scandir(root) as entries:
        entries = sorted(entries, key=lambda entry: entry.name)
    class_names = [e.name for e in entries if e.is_dir() and not _is_hidden(e.name)]
    if not class_names:
        loose_files = [e.name for e in entries if e.is_file() and not _is_hidden(e.name)]
        found = f" (it holds {len(loose_files)} file(s) directly)" if loose_files else ""
        raise ValueError(
            f"no class sub-folders in {root}{found}; expected the layout "
            f"{os.path.join(root, 'class_name', 'image.jpg')}"
        )

    paths, labels, skipped, empty_classes = [], [], [], []
    for class_name in class_names:
        n_before = len(paths)
        for file_path in _class_folder_files(os.path.join(root, class_name)):
            if file_path.lower().endswith(extensions):
                paths.append(file_path)
                labels.append(class_name)
            else:
                skipped.append(file_path)
        if len(paths) == n_before:
            empty_classes.append(class_name)

    if empty_classes:
        raise ValueError(
            f"class folder(s) with no image files in {root}: {empty_classes}; "
            f"accepted extensions: {' '.join(extensions)}"
        )
    if skipped:
        examples = ", ".join(os.path.relpath(p, root) for p in skipped[:_N_SKIPPED_EXAMPLES])
        more = ", ..." if len(skipped) > _N_SKIPPED_EXAMPLES else ""
        warnings.warn(
            f"skipped {len(skipped)} file(s) in {root} whose extension is not an "
            f"image extension ({' '.join(extensions)}): {examples}{more}",
            UserWarning,
            stacklevel=2,
        )

    labels = np.asarray(labels, dtype=str)
    if return_class_names:
        return paths, labels, class_names
    return paths, labels
