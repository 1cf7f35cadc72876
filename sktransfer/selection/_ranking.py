"""Rank candidate feature extractors for a labelled target set before training."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import clone

from .._typing import CrossValidator, CVLike, Estimator, RandomStateLike
from ..utils._progress import Progress
from ._folds import CV_SCORES, cv_accuracy, fold_plan, make_cv
from ._scores import leep_score, logme_score, nce_score

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SCORES", "make_cv", "rank_transfer", "score_features"]

#: Every score ``rank_transfer`` computes; higher is better for each.
SCORES = ("logme", "leep", "nce", "knn", "linear")
_SOURCE_SCORES = {"leep": leep_score, "nce": nce_score}
_NO_SOURCE = (
    "leep/nce need the network's own classifier, which reads only the default embedding "
    "(layer=None, pooling=None) of a named network"
)


def _candidate_name(extractor, index):
    params = extractor.get_params(deep=False) if hasattr(extractor, "get_params") else {}
    model = params.get("model")
    if isinstance(model, str):
        layer = params.get("layer") or "embedding"
        pooling = params.get("pooling") or "default"
        return f"{model}/{layer}/{pooling}"
    return f"{type(extractor).__name__}_{index}"


def _named_candidates(candidates):
    if isinstance(candidates, dict):
        items = list(candidates.items())
    elif isinstance(candidates, (list, tuple)):
        items, seen = [], {}
        for i, ext in enumerate(candidates):
            name = _candidate_name(ext, i)
            seen[name] = seen.get(name, 0) + 1
            items.append((name if seen[name] == 1 else f"{name}#{seen[name]}", ext))
    else:
        raise TypeError(
            f"candidates must be a dict of name -> extractor or a list of extractors, got {type(candidates).__name__}"
        )
    if not items:
        raise ValueError("candidates is empty: give at least one extractor")
    for name, ext in items:
        if not (hasattr(ext, "fit") and hasattr(ext, "transform")):
            raise TypeError(f"candidate {name!r} is a {type(ext).__name__}, not a transformer with fit and transform")
    return items


def _check_scores(scores):
    if isinstance(scores, str):
        scores = (scores,)
    scores = tuple(scores)
    unknown = [s for s in scores if s not in SCORES]
    if unknown or not scores:
        raise ValueError(f"scores must be a non-empty subset of {SCORES}, got {scores!r}")
    return scores


def _check_labels(y):
    """``y`` as a 1-D array of at least two classes, or an error naming what is wrong."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per image), got shape {y.shape}")
    # NaN is the only value unequal to itself.
    missing = [i for i, label in enumerate(y.tolist()) if label is None or label != label]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise ValueError(f"y has {len(missing)} missing label(s) (None or NaN) at position(s) {shown}")
    try:
        classes = np.unique(y)
    except TypeError as exc:
        kinds = sorted({type(label).__name__ for label in y.tolist()})
        raise ValueError(f"y mixes labels of types {kinds} that cannot be compared; give labels of one type") from exc
    if len(classes) < 2:
        raise ValueError("y has a single class: ranking needs at least 2")
    return y


def _extract_all(named, X, need_source, progress):
    """Each candidate's features (and source probabilities where readable), one pass per network.

    A pass that raises records its error for each of its candidates in
    ``failed`` (name -> exception), and the other passes go on.
    """
    # Imported here: scoring precomputed features needs no torch.
    from ._shared_pass import extract_shared, reads_source_head, shared_pass_key

    features, source, extract_s, failed = {}, {}, {}, {}
    groups = {}
    for name, ext in named:
        key = shared_pass_key(ext)
        groups.setdefault(key if key is not None else ("alone", name), []).append((name, ext))
    progress.add(len(groups))
    for key, members in groups.items():
        t0 = time.perf_counter()
        proba = None
        try:
            if key[0] == "alone":
                ((name, ext),) = members
                features[name] = np.asarray(clone(ext).fit_transform(X), dtype=np.float64)
            else:
                with_source = need_source and any(reads_source_head(e) for _, e in members)
                feats, proba = extract_shared([e for _, e in members], X, with_source=with_source)
                for (name, _), f in zip(members, feats):
                    features[name] = np.asarray(f, dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - any candidate's fault is reported, the others keep their work
            for name, _ in members:
                features.pop(name, None)
                failed[name] = exc
        # Candidates sharing a pass share its time equally.
        share = (time.perf_counter() - t0) / len(members)
        progress.step(f"extracted {', '.join(name for name, _ in members)}")
        for name, ext in members:
            extract_s[name] = share
            if proba is not None and reads_source_head(ext):
                source[name] = proba
    return features, source, extract_s, failed


def _joined_notes(notes, scores):
    """``"knn, linear: 3 folds, ..."``: the notes of `scores`, scores sharing a note named together."""
    by_note = {}
    for score in scores:
        if score in notes:
            by_note.setdefault(notes[score], []).append(score)
    return [f"{', '.join(named)}: {note}" for note, named in by_note.items()]


def _described(exc):
    return f"{type(exc).__name__}: {exc}"


def _report_failures(failed, n_candidates):
    """Raise when every candidate failed; otherwise warn once naming the failed ones."""
    if not failed:
        return
    listing = "; ".join(f"{name!r}: {_described(exc)}" for name, exc in failed.items())
    if len(failed) == n_candidates:
        first = next(iter(failed.values()))
        message = f"every candidate failed to extract features: {listing}"
        try:
            # The first failure's own type, so that callers catching it still do.
            error = type(first)(message)
        except Exception:  # noqa: BLE001 - an exception type that takes other arguments
            error = RuntimeError(message)
        raise error from first
    warnings.warn(
        f"rank_transfer: {len(failed)} of {n_candidates} candidate(s) failed to extract features and are "
        f"ranked last with NaN scores: {listing}",
        UserWarning,
        stacklevel=3,
    )


def rank_transfer(
    candidates: dict[str, Estimator] | list[Estimator] | tuple[Estimator, ...],
    X: Any,
    y: ArrayLike,
    *,
    scores: str | Sequence[str] | None = None,
    sort_by: str | None = None,
    cv: CVLike | None = None,
    random_state: RandomStateLike = None,
    return_timings: bool = False,
    verbose: int = 0,
) -> pd.DataFrame:
    """Rank feature extractors by how well their features suit labelled images.

    Each candidate is cloned, fitted on ``X`` and its features extracted
    once (candidates of one named network that differ only in ``layer`` and
    ``pooling`` share a single forward pass); every score is then computed
    from those features, without training any network.

    Parameters
    ----------
    candidates : dict of str to transformer, or list of transformers
        Typically :class:`~sktransfer.PretrainedFeatureExtractor` instances
        with different ``model``, ``layer`` or ``pooling``. A list gets
        names ``"model/layer/pooling"``.
    X : images
        Anything the candidates accept (paths, arrays...).
    y : array-like of shape (n_samples,)
        Labels, at least two classes, of one type, none missing (None or
        NaN is an error naming its positions).
    scores : str, sequence of str or None, default=None
        ``"logme"`` (LogME evidence), ``"leep"`` and ``"nce"`` (from the
        network's ImageNet classifier; NaN unless the candidate's features
        are the classifier's input, i.e. ``layer=None`` and
        ``pooling=None``), ``"knn"`` (cross-validated accuracy of a 5-nearest
        neighbour cosine classifier) and ``"linear"`` (cross-validated
        accuracy of standardised LogisticRegression). Higher is better.
        None: all of ``SCORES``, except that, with two candidates or more,
        a score that cannot tell them apart (NaN for every candidate, such
        as LEEP and NCE when no candidate reads the network's classifier,
        or equal for all, such as NCE at 0 when each source class the
        images fall into holds a single target class) is left out, with
        a warning saying why. Scores named explicitly are always kept.
    sort_by : str or None, default=None
        Score to sort by, best first; None: the first of ``scores``.
    cv : int, cross-validation splitter or None, default=None
        Folds of the ``knn`` and ``linear`` scores; an int gives shuffled
        stratified folds and needs that many images of every class. None
        fits the folds to the smallest class, so that few images per class
        still give a ranking: 5 shuffled stratified folds, fewer when the
        smallest class has fewer than 5 images; when a class has a single
        image, ``knn`` is leave-one-out (that image counts as a miss) and
        ``linear`` is skipped (NaN). LogME, LEEP and NCE need no folds.
        Either change is said in the ``note`` column and in one warning.
    random_state : int, RandomState or None, default=None
        Shuffling of those folds.
    return_timings : bool, default=False
        Add the columns ``extract_s`` (seconds extracting, shared equally
        by candidates of one pass) and ``<score>_s`` (seconds per score).
    verbose : int, default=0
        1: one line per extraction pass and per scored candidate, on
        stderr, with the elapsed time.

    Returns
    -------
    pandas.DataFrame
        One row per candidate, indexed by name, best first: a column per
        score, ``n_features``, the timings when `return_timings` is True,
        and ``note`` (why a score is NaN, or how its folds were chosen).

        A candidate whose extraction raises does not stop the ranking: its
        row has NaN scores and the error in ``note``, it is ranked last, and
        one warning names it with its error, so the other candidates' work
        is kept. When every candidate fails, the first one's error type is
        raised, naming each candidate and its error (chained to the first).

    Warns
    -----
    UserWarning
        When candidates failed, or when ``cv=None`` reduced the folds or
        skipped a score.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> from sktransfer.selection import rank_transfer
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    >>> y = np.repeat([0, 1], 10)
    >>> images[y == 1, :16] = 255  # bright top half: class 1
    >>> candidates = {
    ...     layer: PretrainedFeatureExtractor(model="tiny_convnet", weights=None, layer=layer)
    ...     for layer in ("stage1", "stage2")
    ... }
    >>> table = rank_transfer(candidates, images, y, scores=("logme", "knn"), random_state=0)
    >>> list(table.columns[:2]), len(table)
    (['logme', 'knn'], 2)
    """
    if not (isinstance(verbose, Integral) and verbose >= 0):
        raise ValueError(f"verbose must be a non-negative integer, got {verbose!r}")
    default_scores = scores is None
    scores = _check_scores(SCORES if scores is None else scores)
    sort_by = scores[0] if sort_by is None else sort_by
    if sort_by not in scores:
        raise ValueError(f"sort_by={sort_by!r} is not one of the computed scores {scores}")
    named = _named_candidates(candidates)
    y = _check_labels(y)
    splitters, fold_notes = fold_plan(cv, y, random_state, [s for s in scores if s in CV_SCORES])
    if fold_notes:
        described = "; ".join(_joined_notes(fold_notes, scores))
        warnings.warn(f"rank_transfer with cv=None: {described}", UserWarning, stacklevel=2)
    need_source = bool(set(_SOURCE_SCORES) & set(scores))
    progress = Progress(verbose, "rank_transfer", total=len(named))  # extraction passes added once grouped
    features, source, extract_s, failed = _extract_all(named, X, need_source, progress)
    _report_failures(failed, len(named))
    n_images = len(next(iter(features.values())))
    if n_images != len(y):
        raise ValueError(f"X and y have different lengths ({n_images} and {len(y)})")
    table = score_features(
        [name for name, _ in named],
        features,
        source,
        extract_s,
        y,
        scores,
        sort_by,
        splitters,
        notes=fold_notes,
        failed=failed,
        progress=progress,
    )
    if default_scores and len(named) > 1:
        table = _without_uninformative_scores(table, scores, sort_by)
    if not return_timings:
        table = table.drop(columns=[column for column in table.columns if column.endswith("_s")])
    return table


def _without_uninformative_scores(table, scores, sort_by):
    """`table` without the score columns that are NaN for every candidate or equal for all, with one warning."""
    dropped = []
    for score in scores:
        values = table[score].to_numpy(dtype=float)
        if np.isnan(values).all():
            dropped.append(f"{score} (NaN for every candidate)")
        elif not np.isnan(values).any() and np.ptp(values) == 0:
            dropped.append(f"{score} (equal to {values[0]:.4g} for every candidate)")
    if not dropped or len(dropped) == len(scores):  # none, or nothing left to rank by: keep them all
        return table
    warnings.warn(
        f"rank_transfer left out score(s) that cannot rank these candidates: {'; '.join(dropped)}; "
        "name them in scores= to keep them",
        UserWarning,
        stacklevel=3,
    )
    names = [entry.split(" ")[0] for entry in dropped]
    if sort_by in names:
        kept = [score for score in scores if score not in names]
        if kept:
            table = table.sort_values(kept[0], ascending=False, kind="stable", na_position="last")
    return table.drop(columns=[*names, *(f"{name}_s" for name in names)])


def score_features(
    names: Sequence[str],
    features: Mapping[str, NDArray[np.floating]],
    source: Mapping[str, NDArray[np.floating]],
    extract_s: Mapping[str, float],
    y: NDArray[Any],
    scores: Sequence[str],
    sort_by: str,
    splitter: CrossValidator | Mapping[str, CrossValidator | None] | None,
    *,
    notes: Mapping[str, str] | None = None,
    failed: Mapping[str, BaseException] | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The ranking table from extracted features (``rank_transfer`` without the extraction).

    ``features``, ``source`` (source-class probabilities, where readable) and
    ``extract_s`` are dicts keyed by candidate name. ``splitter`` is the
    folds of the k-NN and linear scores, or a dict of them by score (None:
    the score is skipped, NaN); ``notes`` says, by score, how a score was
    computed or why it was skipped; ``failed`` maps the candidates whose
    extraction raised to their error (a row of NaN scores, the error in its
    note); ``progress`` is told of each candidate scored.
    """
    import pandas as pd

    # The caller's progress counts the candidates to score already (its total is known up front).
    progress = Progress(0, "", total=len(names)) if progress is None else progress

    splitters = splitter if isinstance(splitter, Mapping) else dict.fromkeys(CV_SCORES, splitter)
    notes, failed = dict(notes or {}), dict(failed or {})
    rows = []
    for name in names:
        if name in failed:
            row = dict.fromkeys(scores, np.nan) | {"n_features": np.nan, "extract_s": extract_s.get(name, np.nan)}
            row |= {f"{score}_s": np.nan for score in scores}
            rows.append((name, row | {"note": f"extraction failed: {_described(failed[name])}"}))
            continue
        F = features[name]
        row = {"n_features": F.shape[1], "extract_s": extract_s[name]}
        row_notes = _joined_notes(notes, scores)
        if not np.isfinite(F).all():
            raise ValueError(f"candidate {name!r} gave non-finite features (unreadable images with on_error='nan'?)")
        for score in scores:
            t0 = time.perf_counter()
            if score == "logme":
                row[score] = logme_score(F, y)
            elif score in _SOURCE_SCORES:
                row[score] = _SOURCE_SCORES[score](source[name], y) if name in source else np.nan
                if name not in source and _NO_SOURCE not in row_notes:
                    row_notes.insert(0, _NO_SOURCE)
            elif splitters.get(score) is None:
                row[score] = np.nan
            else:
                row[score] = cv_accuracy(score, F, y, splitters[score])
            row[f"{score}_s"] = time.perf_counter() - t0
        row["note"] = "; ".join(row_notes)
        rows.append((name, row))
        progress.step(f"scored {name}")
    progress.close()
    table = pd.DataFrame([r for _, r in rows], index=pd.Index([n for n, _ in rows], name="candidate"))
    table = table[list(scores) + ["n_features", "extract_s"] + [f"{s}_s" for s in scores] + ["note"]]
    return table.sort_values(sort_by, ascending=False, kind="stable", na_position="last")
