"""Hugging Face hub files, offline first: the local cache, then (when allowed) a download.

Weights of ``"timm/<name>"`` and ``"hf-hub:<org>/<repo>"`` models live in
the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``), laid out as the hub writes it::

    models--<org>--<repo>/refs/<branch>            the commit a branch points at
    models--<org>--<repo>/snapshots/<commit>/<file> a link to blobs/<sha256>

A file is looked up there first (``huggingface_hub.try_to_load_from_cache``);
only when it is missing and ``HF_HUB_OFFLINE`` is not set is it downloaded,
by ``huggingface_hub.hf_hub_download``. Both variables are read when a file
is needed, not when the library is imported, so a test or a notebook can set
them late. A file that is neither cached nor downloadable is a
:class:`WeightsNotAvailableError` that says how to download it once or pass a
local file instead.

A cached file is named by the repository, the commit and the SHA-256 of its
bytes (the name of the blob it links to, which the hub sets to the content's
SHA-256 for weights files): the identity a pickled extractor and the
embedding store key on (:func:`._weights.weights_identity`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

#: Weights files a timm hub repository holds, in the order timm prefers them.
HUB_WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class WeightsNotAvailableError(FileNotFoundError):
    """Pretrained weights neither in a local cache nor downloadable (no network, or downloads switched off)."""


@dataclass(frozen=True)
class HubFile:
    """A file of a hub repository, in the local cache."""

    repo_id: str
    revision: str | None
    filename: str
    path: str

    @property
    def commit(self) -> str:
        """The commit the file was cached from (its snapshot folder's name)."""
        return os.path.basename(os.path.dirname(self.path))

    @property
    def blob_sha256(self) -> str | None:
        """The SHA-256 of the bytes when the hub named the file's blob by it (weights files), else None."""
        target = os.path.realpath(self.path)
        name = os.path.basename(target)
        if _SHA256.match(name) and os.path.basename(os.path.dirname(target)) == "blobs":
            return name
        return None


def hub_cache_dir() -> str:
    """The Hugging Face hub cache folder, from the environment as it is now."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    return os.path.join(os.path.expanduser(home), "hub")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids downloads (read from the environment now)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached_revisions(repo_id: str) -> dict[str, str]:
    """Branches and tags of ``repo_id`` in the cache, mapped to their commits (for messages)."""
    folder = os.path.join(hub_cache_dir(), "models--" + repo_id.replace("/", "--"))
    found = {}
    refs = os.path.join(folder, "refs")
    if os.path.isdir(refs):
        for name in sorted(os.listdir(refs)):
            with open(os.path.join(refs, name), encoding="utf-8") as fh:
                found[name] = fh.read().strip()
    snapshots = os.path.join(folder, "snapshots")
    if os.path.isdir(snapshots):
        for commit in sorted(os.listdir(snapshots)):
            if commit not in found.values():
                found[commit[:12]] = commit
    return found


def cached_file(repo_id: str, filename: str, revision: str | None = None) -> HubFile | None:
    """``filename`` of ``repo_id`` at ``revision`` (default: main) in the cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename, cache_dir=hub_cache_dir(), revision=revision)
    if isinstance(path, str) and os.path.isfile(path):
        return HubFile(repo_id, revision, filename, path)
    return None


def download_alternatives(model: str) -> str:
    """The end of a "weights not available" message: a local file, or a backbone that needs no download."""
    from ._base import OFFLINE_BACKBONES

    return (
        f"or pass a local file: model={model!r}, weights='/path/to/weights.safetensors' (or .pth). "
        f"Backbones that need no download: {list(OFFLINE_BACKBONES)}."
    )


def download_instructions(model: str, repo_id: str, revision: str | None) -> str:
    """How to put ``repo_id`` in the cache once, or do without it (for error messages)."""
    at = f", revision={revision!r}" if revision else ""
    rev_flag = f" --revision {revision}" if revision else ""
    return (
        f"Download it once, with network access:\n"
        f"    hf download {repo_id}{rev_flag}\n"
        f"or in Python:\n"
        f'    from huggingface_hub import snapshot_download; snapshot_download("{repo_id}"{at})\n'
        f"(HF_HOME, now {os.path.dirname(hub_cache_dir())!r}, must name the same folder when it is used), "
        + download_alternatives(model)
    )


def find_hub_file(model: str, repo_id: str, filenames: tuple[str, ...], revision: str | None = None) -> HubFile:
    """The first of ``filenames`` of ``repo_id`` found in the cache, else downloaded when allowed.

    Raises
    ------
    WeightsNotAvailableError
        When none is cached and downloading is off (``HF_HUB_OFFLINE``) or
        fails (no network, no such repository or revision). The message
        names the cached revisions of the repository, if any, and how to
        download it once.
    """
    for filename in filenames:
        found = cached_file(repo_id, filename, revision)
        if found is not None:
            return found
    why = "HF_HUB_OFFLINE is set"
    if not hub_offline():
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        for filename in filenames:
            try:
                path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=hub_cache_dir())
                return HubFile(repo_id, revision, filename, path)
            except EntryNotFoundError:
                continue
            except Exception as exc:  # no network, unknown repository, gated model...
                why = f"downloading failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                break
        else:
            why = f"the repository has none of {list(filenames)}"
    revisions = cached_revisions(repo_id)
    if revisions:
        cached = ", ".join(f"{k} -> {v[:12]}" for k, v in revisions.items())
        where = f"the cache holds only other revisions of it ({cached})"
    else:
        where = "it is not in the cache"
    rev = f" at revision {revision!r}" if revision else ""
    raise WeightsNotAvailableError(
        f"{' or '.join(filenames)} of {repo_id}{rev} (model={model!r}) is not available: {where} "
        f"({hub_cache_dir()!r}) and {why}. " + download_instructions(model, repo_id, revision)
    )
