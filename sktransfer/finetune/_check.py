"""The internal check: fine-tune only when it beats the frozen-features recipe, by cross-validation.

Fine-tuning a pretrained network on a few hundred images can help or hurt:
on some data a classifier on frozen embeddings is already as good as
anything the last layer groups learn from so few images, or better.
:func:`check_fine_tuning` decides, on the training images only:

1. the frozen embeddings of every training image are computed once (the
   pretrained prefix, on the fit's engine), and the probe's ``C`` (the head
   that LP-FT starts from, see :mod:`._probe`) is chosen among
   :data:`PROBE_CS` by held-out log-loss over stratified folds of the
   training images (closed-form cheap: a convex fit on cached embeddings);
2. on each fold, the estimator fine-tunes a fresh pretrained network on the
   other folds exactly as its final fit would (its own schedule, its own
   probe start) and predicts the held-out fold;
3. the frozen contender, :class:`~sktransfer.FrozenFeatureClassifier`
   (the library's frozen recipe: its defaults unless the estimator's
   ``frozen`` says otherwise), is cross-validated on the same folds by its
   own ``cv`` (its embeddings computed once) and fitted on every image;
4. the probe alone (on the network's own frozen embeddings) predicts each
   held-out fold too;
5. the recipe is kept (``fine_tuned_=False``, ``frozen_``) unless a
   challenger, fine-tuning or the probe, is more accurate than it by
   McNemar's exact test on the held-out predictions, image by image
   (one-sided, at :data:`SIGNIFICANCE`); of the challengers that are, the
   most accurate (equal: the lower log-loss; still equal: the probe, the
   cheaper) is kept: the fine-tuned network, or the frozen network with the
   probe as its head (``fine_tuned_=False``).

The recipe is the incumbent because it is the library's measured answer
for frozen features, and because on a hundred images the folds' accuracies
differ by a few images: picking the highest of three noisy estimates
would swap a stronger model for a weaker one about as often as the other
way round. McNemar's test on paired predictions is the standard
comparison of two classifiers evaluated on the same examples (Dietterich,
"Approximate statistical tests for comparing supervised classification
learning algorithms", Neural Computation 1998).

The folds share the fit's decoded images and activation cache: what runs
per fold is the trainable suffix, plus one pass of the held-out images
through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import binomtest
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from torch import nn

from ..feature_extraction import FrozenFeatureClassifier
from ._activation_cache import ActivationCache
from ._datasets import TrainingDataset
from ._network import HEAD, suffix_start
from ._probe import fit_linear_probe
from ._runs import warn_interrupted

#: The probe's inverse regularisation strengths the check chooses from
#: (scikit-learn's ``LogisticRegression(C=...)`` on the raw embeddings).
PROBE_CS = (0.1, 0.3, 1.0, 3.0, 10.0)

#: A challenger replaces the recipe only when McNemar's one-sided exact
#: p-value of its being more accurate is below this (the conventional 5%).
SIGNIFICANCE = 0.05


@dataclass
class CheckResult:
    """What :func:`check_fine_tuning` found.

    Attributes
    ----------
    kept : {"fine_tuned", "probe", "frozen"}
        The candidate that won: the probe too when the check was interrupted.
    probe_C : float
        The probe's ``C`` chosen by held-out log-loss.
    scores : dict or None
        None when the check was interrupted (Ctrl-C). Cross-validated
        ``accuracy`` and ``log_loss`` of ``"probe"``, ``"frozen"`` (the
        recipe) and ``"fine_tuned"``, the ``p_value`` of the probe and of
        fine-tuning against the recipe, and ``n_folds``.
    embeddings : Tensor
        Frozen embeddings of every training image (for the final probe).
    interrupted_after : int or None
        Epochs of the fold run that was interrupted; None when none was.
    frozen : FrozenFeatureClassifier or None
        The recipe, fitted on every training image; None when interrupted.
    """

    kept: str
    probe_C: float
    scores: dict = field(default_factory=dict)
    embeddings: torch.Tensor | None = None
    interrupted_after: int | None = None
    frozen: FrozenFeatureClassifier | None = None


def stratified_folds(y_encoded: np.ndarray, n_folds: int, seed: int | None) -> list | None:
    """Stratified (train, test) index pairs, at most ``n_folds``; None when a class has one image."""
    fewest = int(np.bincount(y_encoded).min())
    if fewest < 2:
        return None
    splitter = StratifiedKFold(min(n_folds, fewest), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y_encoded)), y_encoded))


@torch.no_grad()
def frozen_embeddings(network: nn.Module, dataset: TrainingDataset, *, device, batch_size: int, fast=None):
    """The pretrained network's embeddings of every stored image of ``dataset``, or None beyond the cache bound.

    The prefix runs on ``fast``'s engine; for image files, the inputs of
    the last groups go to the fit memo on the way, where the fine-tuning
    runs find their entry. A cache of its own: the training runs derive
    their activations as a fit without the check does. Call it on a network
    that still holds its pretrained weights.
    """
    store = dataset.images
    cache = ActivationCache(store.cache.memo_key)
    if not cache.fill(network, store, HEAD, device=device, batch_size=batch_size, fast=fast):
        return None
    return cache.values[HEAD]


def _probe_logits(embeddings, y, train, test, C, class_weight):
    linear = nn.Linear(embeddings.shape[1], int(y.max()) + 1)
    fit_linear_probe(linear, embeddings[train], y[train], class_weight=class_weight, C=C)
    with torch.no_grad():
        return linear(embeddings[test].float())


def _summed_log_loss(logits, y):
    return float(nn.functional.cross_entropy(logits.float(), y, reduction="sum"))


def choose_probe_C(embeddings, y, folds, class_weight=None) -> tuple[float, dict, list]:
    """The ``C`` of :data:`PROBE_CS` with the lowest held-out log-loss (ties: the stronger penalty).

    Returns ``(C, losses, heldout)``: the mean held-out log-loss of every
    ``C``, and the chosen probe's logits of each fold's held-out images (the
    check scores the probe with them instead of fitting it again).
    """
    losses, logits = {}, {}
    for C in PROBE_CS:
        logits[C] = [_probe_logits(embeddings, y, train, test, C, class_weight) for train, test in folds]
        losses[C] = sum(_summed_log_loss(out, y[test]) for out, (_, test) in zip(logits[C], folds)) / len(y)
    best = min(losses.values())
    chosen = next(C for C in PROBE_CS if losses[C] == best)
    return chosen, losses, logits[chosen]


@torch.no_grad()
def heldout_logits(net, dataset: TrainingDataset, rows: np.ndarray) -> torch.Tensor:
    """The trained ``net``'s logits of stored images ``rows``: from cached activations when the fit cached them."""
    network = net.module_
    store = dataset.images
    start = suffix_start(network, net.n_unfrozen_groups_)
    cached = store.cache.values.get(start) if start is not None else None
    network.eval()
    out = []
    batch = max(net._batch_size(), 64)
    for lo in range(0, len(rows), batch):
        index = rows[lo : lo + batch]
        if cached is not None:
            out.append(net.infer(cached[index], start=start).cpu())
        else:
            images = torch.stack([store.eval_item(int(i)) for i in index])
            out.append(net.infer(images, start=None).cpu())
    return torch.cat(out)


def frozen_recipe(net) -> FrozenFeatureClassifier:
    """The estimator's frozen contender, unfitted: a clone of ``frozen``, else the recipe's defaults, seeded alike."""
    if net.frozen is not None:
        return clone(net.frozen)
    return FrozenFeatureClassifier(random_state=net.random_state)


def check_fine_tuning(net, dataset: TrainingDataset, y_encoded: np.ndarray, n_folds: int, items) -> CheckResult | None:
    """Cross-validate fine-tuning against the frozen recipe on ``dataset`` (see the module docstring).

    ``net`` is a :class:`FineTuneClassifier` freshly initialised (its network
    pretrained); it is left holding the last fold's network: initialise it
    again before the final fit. ``items`` are the training images as the
    recipe takes them, in ``y_encoded``'s order. None when no check is
    possible (a class with one image, or embeddings beyond the cache bound).
    """
    folds = stratified_folds(y_encoded, n_folds, net.random_state)
    if folds is None:
        return None
    compute = {"device": net.device_, "batch_size": max(net._batch_size(), 64)}
    embeddings = frozen_embeddings(net.module_, dataset, fast=net._fast_prefix, **compute)
    if embeddings is None:
        return None
    embeddings = embeddings[torch.as_tensor(dataset.indices)].float()
    y = torch.as_tensor(y_encoded)
    weight = getattr(net, "class_weight_", None)
    weight = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
    probe_C, _, probe_heldout = choose_probe_C(embeddings, y, folds, weight)
    net.probe_C_ = probe_C
    # Per challenger: the summed held-out log-loss, and which images it got right when held out.
    loss = {"probe": 0.0, "fine_tuned": 0.0}
    correct = {"probe": np.zeros(len(y), dtype=bool), "fine_tuned": np.zeros(len(y), dtype=bool)}
    for k, ((train, test), probe) in enumerate(zip(folds, probe_heldout)):
        if k:
            net.initialize()  # a fresh pretrained network per fold
        net._train(dataset.view(train, train=True), y_encoded[train])
        if net.interrupted_:  # Ctrl-C: no verdict; the probe stands (see keeps_frozen_model)
            return CheckResult("probe", probe_C, None, embeddings, interrupted_after=len(net.history))
        tuned = heldout_logits(net, dataset, dataset.indices[test])
        for name, logits in (("probe", probe), ("fine_tuned", tuned)):
            loss[name] += _summed_log_loss(logits, y[test])
            correct[name][test] = (logits.argmax(1) == y[test]).numpy()
    recipe = frozen_recipe(net).set_params(cv=folds)
    recipe.fit(items, net.classes_[y_encoded])
    recipe_correct = recipe.cv_predictions_ == net.classes_[y_encoded]  # the folds hold out each image once
    scores = {
        "probe_accuracy": float(correct["probe"].mean()),
        "probe_log_loss": loss["probe"] / len(y),
        "probe_p_value": mcnemar_p_value(correct["probe"], recipe_correct),
        "frozen_accuracy": recipe.cv_scores_["accuracy"],
        "frozen_log_loss": recipe.cv_scores_["log_loss"],
        "fine_tuned_accuracy": float(correct["fine_tuned"].mean()),
        "fine_tuned_log_loss": loss["fine_tuned"] / len(y),
        "fine_tuned_p_value": mcnemar_p_value(correct["fine_tuned"], recipe_correct),
        "n_folds": len(folds),
    }
    return CheckResult(best_candidate(scores), probe_C, scores, embeddings, frozen=recipe)


#: The check's candidates: the recipe, then the challengers in the order
#: ties between them go (the cheaper to predict with first).
CANDIDATES = ("frozen", "probe", "fine_tuned")


def mcnemar_p_value(challenger_correct: np.ndarray, recipe_correct: np.ndarray) -> float:
    """One-sided exact McNemar p-value that the challenger is more accurate than the recipe.

    Only the images exactly one of the two gets right count: under the null
    hypothesis of equal accuracy each of them is the challenger's with
    probability 1/2. 1.0 when there is none.
    """
    wins = int(np.sum(challenger_correct & ~recipe_correct))
    losses = int(np.sum(~challenger_correct & recipe_correct))
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


def best_candidate(scores: dict) -> str:
    """``"frozen"`` unless a challenger beats it at :data:`SIGNIFICANCE`; then the best such challenger.

    Among significant challengers: the highest accuracy, then the lowest
    log-loss, then the first of :data:`CANDIDATES`.
    """

    def key(name):
        log_loss = scores[f"{name}_log_loss"]
        # A NaN log-loss loses the tie.
        return scores[f"{name}_accuracy"], -log_loss if np.isfinite(log_loss) else -np.inf

    challengers = [name for name in CANDIDATES[1:] if scores[f"{name}_p_value"] < SIGNIFICANCE]
    return max(challengers, key=key) if challengers else "frozen"  # max keeps the first of equal keys


def keeps_frozen_model(net, dataset: TrainingDataset, y_encoded: np.ndarray, items) -> bool:
    """Run ``net``'s internal check before its final fit; True when the frozen side won and is fitted.

    Sets ``fine_tuned_``, ``check_scores_``, ``probe_C_`` and ``frozen_``
    on ``net``, and leaves it initialised afresh (pretrained network; with
    ``random_state``, torch's generator reseeded, so that a final
    fine-tuning draws as a fit without the check). Unless fine-tuning won,
    nothing trains and the network's head is the probe fitted on every
    image: the model when the probe won (or the check was interrupted),
    where a later ``partial_fit`` starts when the recipe won and is
    ``frozen_`` (fitted on every training image). No check without
    ``check_folds`` or with a ``train_split``.
    """
    net.fine_tuned_, net.check_scores_, net.probe_C_, net.frozen_ = True, None, 1.0, None
    if net.check_folds is None or net.train_split is not None:
        return False
    verbose, net.verbose = net.verbose, 0  # the folds' epochs are not the fit's
    try:
        result = check_fine_tuning(net, dataset, y_encoded, net.check_folds, items)
        if net.random_state is not None:
            torch.manual_seed(net.random_state)
        net.initialize()
    finally:
        net.verbose = verbose
    if result is None:
        return False
    if result.scores is None:
        warn_interrupted(
            type(net).__name__,
            "the internal check",
            result.interrupted_after,
            "the model is the probe on frozen features, fitted on every image",
        )
    elif verbose:
        s = result.scores
        kept = {
            "fine_tuned": "fine-tuning",
            "probe": "keeping the probe on the frozen network, no fine-tuning",
            "frozen": f"keeping the frozen features ({type(result.frozen).__name__}), no fine-tuning",
        }[result.kept]
        print(
            f"internal check, {s['n_folds']}-fold accuracy: frozen features {s['frozen_accuracy']:.4f}, "
            f"probe (C={result.probe_C:g}) {s['probe_accuracy']:.4f} (p={s['probe_p_value']:.2g}), "
            f"fine-tuned {s['fine_tuned_accuracy']:.4f} (p={s['fine_tuned_p_value']:.2g}): {kept}",
            flush=True,
        )
    net.fine_tuned_, net.check_scores_, net.probe_C_ = result.kept == "fine_tuned", result.scores, result.probe_C
    if result.kept == "fine_tuned":
        return False
    if result.kept == "frozen":
        net.frozen_ = result.frozen
    weight = getattr(net, "class_weight_", None)
    fit_linear_probe(
        net.module_.head[-1],
        result.embeddings,
        torch.as_tensor(y_encoded),
        class_weight=None if weight is None else torch.as_tensor(weight, dtype=torch.float32),
        C=result.probe_C,
    )
    return True
