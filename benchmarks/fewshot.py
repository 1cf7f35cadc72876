"""Few-shot accuracy: each head, and the default recipe, at 1 to 20 images per class.

Usage (from the repository root)::

    python benchmarks/fewshot.py [--seeds 0 1 2 3 4] [--shots 1 2 5 10 20]
                                 [--backbones lite0 lite2 lite0+lite1+lite2]
                                 [--recipes lite0 lite2 lite0+lite2 lite0+lite1+lite2]
                                 [--recipe-shots 5 20] [--recipe-views 0 8]
                                 [--store DIR] [--test-limit N] [--quick]
                                 [--json out.json] [--write-results [FILE]]

Splits: for each seed, k images per class drawn for training with
``np.random.default_rng(seed).choice`` within each class (the split code of
``benchmarks/accuracy.py`` and ``benchmarks/frozen_views.py``, so seed 0
is their seed-0 split); flowers tests on all the other images, hymenoptera
draws its k per class from ``train/`` and tests on all of ``val/`` (153);
"all" is the whole of ``train/`` (244, no randomness in the split).

Table 1, heads on the centre-crop embeddings of each extractor (``lite0``
is EfficientNet-Lite0; ``lite0+lite1+lite2`` the three backbones'
embeddings concatenated, as a ``FeatureUnion`` gives them), fitted on the
training images only:

* ``LR(C=1)``: ``LogisticRegression(max_iter=1000)``, the previous default;
* ``prototype``: ``FewShotLinearClassifier(strategy="prototype")``, the
  nearest unit-norm class mean of the centred, L2-normalised embeddings;
* ``auto (CV)``: ``FewShotLinearClassifier(strategy="auto", Cs=(0.1, 1,
  10, 100, 1000))``, the default of the previous version: the prototypes
  or a logistic regression on those embeddings at one of those ``C``,
  chosen by internal cross-validation (prototypes at one shot);
* ``FewShotLinearClassifier()``: the default head, a logistic regression
  at ``C=30`` on those embeddings after the signed square root of each
  component (``power=0.5``; both chosen on the many-class set below, not
  on these);
* ``power=1``: ``FewShotLinearClassifier(power=1)``, the same without the
  square root (the default head of the previous version); ``--head-powers``
  lists the powers of these rows (the many-class run below compares 0.3,
  0.7 and 1 with the default 0.5).

The "internal CV" column is ``auto (CV)``'s best cross-validated accuracy
on the training images alone (not defined at one shot): what a user
without test labels sees.

Table 2, recipes fitted end to end from the image files
(``FrozenFeatureClassifier`` with the ``FewShotLinearClassifier()`` head,
``random_state=seed``, and each of ``--recipe-views`` augmented views per
training image, default 0 and 8), at ``--recipe-shots`` and on all of
hymenoptera's ``train/``, one per extractor: ``lite0``, ``lite2`` (a
``PretrainedFeatureExtractor`` of that backbone), ``lite0+lite2`` and
``lite0+lite1+lite2`` (a ``FeatureUnion`` of them); the one
``FrozenFeatureClassifier()`` uses, with its number of views, is marked. Fit time
includes embedding the training images and their views when the store did
not hold them yet (a first run), and only reading them on a rerun: time a
first run with an empty ``--store``.

Embeddings are kept in an ``EmbeddingStore`` (``--store``, default
``benchmarks/.cache/store``, git-ignored): the first run embeds every image
once per backbone, reruns read them.

``--fit-time``: instead of the tables, what each of ``--recipes`` costs,
at each of ``--recipe-views``:
the time of ``FrozenFeatureClassifier(random_state=0).fit`` (the default
one exactly as a user gets it, the others with their extractor) on 100
flowers images (20 per class, seed 0) with nothing stored, as a new
user's first fit (decoding, ``n_views + 1`` embeddings per image per
backbone, the head), then of ``predict`` on 200 test images; median of ``--fit-repeats``
runs, recipes interleaved, and the head's share of the fit. Run it alone
on the machine (``flock`` the benchmark lock).

``--quick``: Lite0 only, seed 0, 1 and 5 shots, recipe ``lite0`` with
flowers scored on 200 test images: a smoke run of about a minute.

``--manyclass-dir DIR``: instead of the tables, table 1 (the heads) on a
data set of many classes, a folder per class, that is not in the shared
data and not committed. A pool of ``--manyclass-per-class`` images per
class (default 30) is drawn once (``split_per_class`` with seed 12345), and
only the pool is embedded; for each seed and each of ``--manyclass-shots``
(default 1 2 5), k images per class of the pool are drawn for training
(``split_per_class``, as above) and the rest of the pool is the test set.
``--manyclass-name`` names the data set in the table;
``--manyclass-recipes`` adds table 2 for those extractors on its splits
(views as ``--recipe-views``): the development set's answer to how many
views the default takes. The data set
measured in RESULTS.md is a 100-class subset of Caltech-UCSD Birds
200-2011 (Wah et al. 2011, photos from Flickr, used under CUB's own terms),
resized to 227x227 pixels, 45-60 images per class,
5,902 in all, as committed in the public GitHub repository
``serizba/vision`` (commit ``dc4cf6285575eba8635449fb8291b91ef3d66025``,
folder ``ex03/task2/bird_dataset``; its README.txt says it is a CUB subset
under CUB's terms). CUB's authors warn that some of its images are also in
ImageNet, which the backbones were trained on, so the absolute accuracies
may be a little optimistic; the comparison between heads is what the
table is for. To get it (about 75 MB; no other file of the repository is
needed)::

    git clone https://github.com/serizba/vision /tmp/serizba-vision
    git -C /tmp/serizba-vision checkout dc4cf6285575eba8635449fb8291b91ef3d66025
    mkdir -p /tmp/manyclass
    cp -r /tmp/serizba-vision/ex03/task2/bird_dataset /tmp/manyclass/cub100
    python benchmarks/fewshot.py --manyclass-dir /tmp/manyclass/cub100/images \\
        --manyclass-name "CUB-200-2011, 100-class subset (serizba/vision)" \\
        --store /tmp/manyclass/store \\
        --backbones lite0 lite1 lite2 lite0+lite2 lite0+lite1+lite2 \\
        --head-powers 0.3 0.7 1 --write-results

Its 100 class folders sit in ``images/``; ``images.txt`` and the other text
files beside it are not read. 100 classes x 30 images = 3,000 images
embedded once per backbone (a few minutes on 2 cores), then read from the
store.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import _results
import numpy as np
from _splits import load_folder, split_per_class

CACHE = Path(__file__).resolve().parent / ".cache"
#: The ``C`` path the previous default head (``strategy="auto"``) cross-validated.
CV_PATH = (0.1, 1.0, 10.0, 100.0, 1000.0)


def extractor(backbone, store):
    from sktransfer import PretrainedFeatureExtractor

    return PretrainedFeatureExtractor(model=backbone, cache=store)


def embed(paths, backbones, store):
    """Centre-crop embeddings of ``paths``, the backbones' concatenated (read from the store when there)."""
    blocks = []
    for backbone in backbones:
        ext = extractor(backbone, store)
        ext.fit(paths[:1])
        blocks.append(np.asarray(ext.transform(list(paths))))
    return np.hstack(blocks)


def heads(powers=(1.0,)):
    """Table 1's heads by name; ``FewShotLinearClassifier(power=p)`` for each of ``powers`` too."""
    from functools import partial

    from sklearn.linear_model import LogisticRegression

    from sktransfer.feature_extraction import FewShotLinearClassifier

    return {
        "LR(C=1)": lambda: LogisticRegression(max_iter=1000),
        "prototype": lambda: FewShotLinearClassifier(strategy="prototype"),
        "auto (CV)": lambda: FewShotLinearClassifier(strategy="auto", Cs=CV_PATH),
        **{f"power={p:g}": partial(FewShotLinearClassifier, power=p) for p in powers},
        "FewShotLinearClassifier()": lambda: FewShotLinearClassifier(),
    }


def tasks(shots, seeds, test_limit):
    """(task name, k, seed, paths, labels, train indices, test indices) of every split."""
    flower_paths, flower_labels = load_folder("flowers")
    for k in shots:
        for seed in seeds:
            tr, te = split_per_class(flower_labels, k, seed, test_limit)
            yield "flowers", k, seed, flower_paths, flower_labels, tr, te
    train_paths, train_labels = load_folder("hymenoptera", "train")
    val_paths, val_labels = load_folder("hymenoptera", "val")
    paths = np.concatenate([train_paths, val_paths])
    labels = np.concatenate([train_labels, val_labels])
    val = np.arange(len(train_paths), len(paths))
    for k in shots:
        for seed in seeds:
            tr, _ = split_per_class(train_labels, k, seed)
            yield "hymenoptera", k, seed, paths, labels, tr, val
    yield "hymenoptera", "all", 0, paths, labels, np.arange(len(train_paths)), val


def summary(accs, fits, extra=None):
    return {
        "accs": accs,
        "mean": float(np.mean(accs)),
        "sd": float(np.std(accs)),
        "min": float(np.min(accs)),
        "max": float(np.max(accs)),
        "fit_s_median": statistics.median(fits),
        **(extra or {}),
    }


def embed_tasks(args, splits):
    """Centre-crop embeddings of every data set, by (data set, backbones)."""
    embedded = {}
    wanted = {*args.extractors.values(), *(backbones_of(name) for name in args.recipes)}
    for dataset, _k, _seed, paths, _labels, _tr, _te in splits:
        for backbones in wanted:
            if (dataset, backbones) not in embedded:
                t0 = time.perf_counter()
                embedded[dataset, backbones] = embed(paths, backbones, args.store)
                print(f"embedded {dataset} with {backbones} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return embedded


def run_heads(args, splits, embedded):
    """Table 1: every head on every backbone's centre-crop embeddings."""
    results = {}
    for backbone_name, backbones in args.extractors.items():
        for dataset, k, _seed, _paths, labels, tr, te in splits:
            X = embedded[dataset, backbones]
            for head_name, make in heads(args.head_powers).items():
                if head_name == "auto (CV)" and k == 1:
                    continue  # C cannot be cross-validated on one image per class
                clf = make()
                t0 = time.perf_counter()
                clf.fit(X[tr], labels[tr])
                fit_s = time.perf_counter() - t0
                acc = float(np.mean(clf.predict(X[te]) == labels[te]))
                row = results.setdefault((dataset, k, backbone_name, head_name), {"accs": [], "fits": [], "cv": []})
                row["accs"].append(acc)
                row["fits"].append(fit_s)
                if head_name == "auto (CV)":
                    row["cv"].append(max(clf.cv_scores_.values()) if clf.cv_scores_ else float("nan"))
                    row.setdefault("chosen", []).append(clf.C_ if clf.C_ is not None else "proto")
    return {
        key: summary(r["accs"], r["fits"], {"cv": r["cv"], "chosen": r.get("chosen")}) for key, r in results.items()
    }


#: The recipes of table 2, named by the backbones of FrozenFeatureClassifier's extractor.
RECIPES = ("lite0", "lite2", "lite0+lite2", "lite0+lite1+lite2")


def backbones_of(name):
    """The backbones an extractor name stands for: ``"lite0+lite2"`` is Lite0's and Lite2's side by side."""
    return tuple(part if part.startswith("efficientnet_") else f"efficientnet_{part}" for part in name.split("+"))


def default_backbones():
    """The backbones of ``FrozenFeatureClassifier()``'s extractor."""
    from sktransfer import FrozenFeatureClassifier

    ext = FrozenFeatureClassifier()._make_extractor()
    return tuple(e.model for _, e in ext.transformer_list) if hasattr(ext, "transformer_list") else (ext.model,)


def recipe(name, seed, store, n_views):
    from sklearn.pipeline import FeatureUnion

    from sktransfer import FrozenFeatureClassifier

    backbones = backbones_of(name)
    if len(backbones) == 1:
        ext = extractor(backbones[0], store)
    else:
        ext = FeatureUnion([(backbone, extractor(backbone, store)) for backbone in backbones])
    # All other parameters the defaults; the store so that reruns do not re-embed.
    return FrozenFeatureClassifier(extractor=ext, n_views=n_views, random_state=seed)


def recipe_label(name, n_views):
    """A recipe's name in table 2, marked when it is ``FrozenFeatureClassifier()``."""
    from sktransfer import FrozenFeatureClassifier

    label = f"{name}, {n_views} views"
    if backbones_of(name) == default_backbones() and n_views == FrozenFeatureClassifier().n_views:
        return f"{label} (`FrozenFeatureClassifier()`)"
    return label


def run_recipes(args, splits, embedded):
    """Table 2: FrozenFeatureClassifier fitted end to end from the image files.

    Predictions are the fitted head's on the test images' centre-crop
    embeddings computed for table 1: what ``predict`` computes (the
    extractor is deterministic), without reading 4,000 embeddings per split
    from the store again.
    """
    results = {}
    for name, n_views in ((name, v) for name in args.recipes for v in args.recipe_views):
        for dataset, k, seed, paths, labels, tr, te in splits:
            if k not in args.recipe_shots and k != "all":
                continue
            clf = recipe(name, seed, args.store, n_views)
            t0 = time.perf_counter()
            clf.fit(list(paths[tr]), labels[tr])
            fit_s = time.perf_counter() - t0
            X_test = embedded[dataset, backbones_of(name)][te]
            acc = float(np.mean(clf.classifier_.predict(X_test) == labels[te]))
            head = clf.classifier_
            print(
                f"recipe {name}, {n_views} views, {dataset} {k}/class seed {seed}: {acc:.4f} (fit {fit_s:.1f} s, "
                f"{head.strategy_} C={head.C_})",
                flush=True,
            )
            row = results.setdefault(
                (dataset, k, name, n_views), {"accs": [], "fits": [], "cv": [], "n_train": len(tr)}
            )
            row["accs"].append(acc)
            row["fits"].append(fit_s)
            row["cv"].append(max(head.cv_scores_.values()) if head.cv_scores_ else float("nan"))
    return {key: summary(r["accs"], r["fits"], {"cv": r["cv"], "n_train": r["n_train"]}) for key, r in results.items()}


def _cv(values):
    values = [v for v in values if not np.isnan(v)]
    return f"{np.mean(values):.3f}" if values else "-"


def _head_row(key, r, chosen=False):
    """One row of a heads table; ``chosen``: with the column of what ``auto (CV)`` picked per seed."""
    dataset, k, backbone, head = key
    cells = [dataset, k, backbone, head, f"{r['mean']:.4f} ± {r['sd']:.4f} [{r['min']:.3f}, {r['max']:.3f}]"]
    cells.append(_cv(r["cv"]) if r["cv"] else "")
    if chosen:
        cells.append(", ".join(map(str, r["chosen"])) if r["chosen"] else "")
    cells.append(f"{r['fit_s_median']:.2f}")
    return "| " + " | ".join(map(str, cells)) + " |"


def recipe_lines(recipe_results):
    """Table 2's markdown lines (none without results)."""
    if not recipe_results:
        return []
    lines = [
        "",
        "### Recipes end to end (FrozenFeatureClassifier: backbones, views, head FewShotLinearClassifier())",
        "",
        "Recipes run in this order and share the store: a recipe's fit time omits the embeddings an "
        "earlier one stored (the views of a seed are the same for every backbone, and the store holds "
        "them); cold: `--fit-time`. Test images are centre-cropped, as the model predicts.",
        "",
        "| data | k/class | recipe | accuracy | internal CV | fit s (median) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for (dataset, k, name, n_views), r in recipe_results.items():
        lines.append(
            f"| {dataset} | {k} | {recipe_label(name, n_views)} | {r['mean']:.4f} ± {r['sd']:.4f} "
            f"[{r['min']:.3f}, {r['max']:.3f}] | {_cv(r['cv'])} | {r['fit_s_median']:.1f} |"
        )
    return lines


def markdown(head_results, recipe_results, args):
    lines = [
        f"Seeds {list(args.seeds)}; accuracy mean ± sd [min, max] over the seeds on the test images "
        "(flowers: all images not drawn for training; hymenoptera: the 153 of val/). "
        "Internal CV: the best cross-validated accuracy of `auto (CV)` on the training images only (heads) "
        "or of the recipe's head when it cross-validates (recipes).",
        "",
        "### Heads on centre-crop embeddings",
        "",
        "| data | k/class | backbone | head | accuracy | internal CV | fit s (median) |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    lines += [_head_row(key, r) for key, r in head_results.items()]
    lines += recipe_lines(recipe_results)
    return "\n".join(lines)


#: Seed of the many-class pool: which images of each class are embedded at all.
MANYCLASS_POOL_SEED = 12345


def manyclass_tasks(root, per_class, shots, seeds, name):
    """The splits of the many-class data set: k per class drawn from a fixed pool, the rest of the pool to test."""
    from sktransfer.datasets import load_image_folder

    paths, labels = load_image_folder(root)
    paths, labels = np.asarray(paths, dtype=object), np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < per_class:
        raise ValueError(
            f"--manyclass-per-class {per_class}: class {str(classes[counts.argmin()])!r} of {root} has only "
            f"{counts.min()} images; lower it"
        )
    if max(shots) >= per_class:
        raise ValueError(f"--manyclass-shots {max(shots)} leaves no test image of a pool of {per_class} per class")
    pool, _ = split_per_class(labels, per_class, MANYCLASS_POOL_SEED)
    pool_paths, pool_labels = paths[pool], labels[pool]
    info = {"classes": len(classes), "images": len(paths), "pool": len(pool)}
    splits = []
    for k in shots:
        for seed in seeds:
            tr, te = split_per_class(pool_labels, k, seed)
            splits.append((name, k, seed, pool_paths, pool_labels, tr, te))
    return splits, info


def run_manyclass(args):
    """Table 1 (the heads on centre-crop embeddings) on the many-class folder ``--manyclass-dir``."""
    name = args.manyclass_name or Path(args.manyclass_dir).name
    started = _results.start_run()
    splits, info = manyclass_tasks(args.manyclass_dir, args.manyclass_per_class, args.manyclass_shots, args.seeds, name)
    args.recipes, args.recipe_shots = args.manyclass_recipes, args.manyclass_shots
    embedded = embed_tasks(args, splits)
    results = run_heads(args, splits, embedded)
    recipe_results = run_recipes(args, splits, embedded) if args.recipes else {}
    lines = [
        f"Data: {name}, {info['classes']} classes, {info['images']} images; a pool of "
        f"{args.manyclass_per_class} per class ({info['pool']} images) drawn once (seed {MANYCLASS_POOL_SEED}) "
        "is embedded. For each seed, k per class of the pool train and the rest of the pool tests "
        f"({args.manyclass_per_class} - k per class). Seeds {list(args.seeds)}; accuracy mean ± sd [min, max] "
        "over the seeds. Internal CV: the best cross-validated accuracy of `auto (CV)` on the training "
        "images only. Chosen: what `auto (CV)` picked, per seed (prototypes or the C of logistic "
        "regression). Where the data set came from, how to get it, and its overlap with ImageNet: "
        "`--manyclass-dir` in the docstring of benchmarks/fewshot.py.",
        "",
        "| data | k/class | backbone | head | accuracy | internal CV | chosen | fit s (median) |",
        "|---|---:|---|---|---:|---:|---|---:|",
    ]
    lines += [_head_row(key, r, chosen=True) for key, r in results.items()]
    lines += recipe_lines(recipe_results)
    table = "\n".join(lines)
    _results.finish_run(args, "Few-shot accuracy: many classes", table, started, {**results, **recipe_results})


def time_recipes(repeats, recipes, views):
    """Markdown: seconds to fit each recipe on 100 flowers images and to predict 200 others, nothing stored."""
    from sklearn.base import clone

    from sktransfer import FrozenFeatureClassifier

    paths, labels = load_folder("flowers")
    tr, te = split_per_class(labels, 20, 0)
    default = default_backbones()
    lines = [
        "| recipe | features | fit 100 images s (median) | runs | predict 200 images s (median) | of the fit: head s |",
        "|---|---:|---:|---|---:|---:|",
    ]
    configurations = [(name, n_views) for name in recipes for n_views in views]
    times = {key: {"fit": [], "predict": [], "head": [], "features": 0} for key in configurations}
    for _ in range(repeats):
        for name, n_views in configurations:  # interleaved, so that a change of load falls on every recipe
            backbones = backbones_of(name)
            # The default recipe exactly as a user gets it; the others as table 2 builds them, with no store.
            if backbones == default and n_views == FrozenFeatureClassifier().n_views:
                clf = FrozenFeatureClassifier(random_state=0)
            else:
                clf = recipe(name, 0, None, n_views)
            t0 = time.perf_counter()
            clf.fit(list(paths[tr]), labels[tr])
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            clf.predict(list(paths[te[:200]]))
            predict_s = time.perf_counter() - t0
            rows = n_views + 1  # as many rows as the fit had
            X = np.repeat(clf.extractor_.transform(list(paths[tr])), rows, axis=0)
            t0 = time.perf_counter()
            clone(clf.classifier_).fit(X, np.repeat(labels[tr], rows), groups=np.repeat(np.arange(len(tr)), rows))
            head_s = time.perf_counter() - t0
            row = times[name, n_views]
            row["fit"].append(fit_s)
            row["predict"].append(predict_s)
            row["head"].append(head_s)
            row["features"] = X.shape[1]
            print(
                f"{name}, {n_views} views: fit {fit_s:.1f} s, predict {predict_s:.1f} s, head {head_s:.1f} s",
                flush=True,
            )
    for (name, n_views), row in times.items():
        label = recipe_label(name, n_views)
        lines.append(
            f"| {label} | {row['features']} | {statistics.median(row['fit']):.1f} | "
            f"{', '.join(f'{t:.1f}' for t in row['fit'])} | {statistics.median(row['predict']):.1f} | "
            f"{statistics.median(row['head']):.1f} |"
        )
    return "\n".join(
        [
            "`FrozenFeatureClassifier(random_state=0).fit` with the `FewShotLinearClassifier()` head on 100 "
            "flowers images (20/class, seed 0), from an empty store as a new user's first fit (decoding, "
            "n_views + 1 embeddings per image per backbone, the head), then `predict` on 200 test images; "
            "recipes interleaved, repeats in order.",
            "",
            *lines,
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--backbones", nargs="+", default=["lite0", "lite2", "lite0+lite1+lite2"])
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--recipe-shots", type=int, nargs="*", default=[5, 20], help="k/class of table 2")
    parser.add_argument("--recipe-views", type=int, nargs="+", default=[0, 8], help="n_views of table 2's recipes")
    parser.add_argument(
        "--head-powers", type=float, nargs="*", default=[1.0], help="table 1 has FewShotLinearClassifier(power=p) too"
    )
    parser.add_argument("--store", default=str(CACHE / "store"))
    parser.add_argument("--test-limit", type=int, default=None, help="score flowers on this many test images")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--fit-time", action="store_true", help="time each recipe's fit of 100 images instead")
    parser.add_argument("--fit-repeats", type=int, default=3)
    parser.add_argument("--manyclass-dir", default=None, help="run table 1 on this folder per class instead")
    parser.add_argument("--manyclass-name", default=None, help="the data set's name in the table")
    parser.add_argument("--manyclass-per-class", type=int, default=30, help="images per class embedded")
    parser.add_argument("--manyclass-shots", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument(
        "--manyclass-recipes", nargs="*", default=[], choices=RECIPES, help="table 2 on the many-class set too"
    )
    parser.add_argument("--json", default=None)
    _results.add_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.shots, args.backbones, args.recipes = [0], [1, 5], ["lite0"], ["lite0"]
        args.recipe_shots = [5]
        args.test_limit = args.test_limit or 200
    if args.fit_time:
        table = time_recipes(args.fit_repeats, args.recipes, args.recipe_views)
        print(table)
        _results.write(args.write_results, "Few-shot: time of each recipe's fit and prediction", table)
        return
    args.extractors = {name: backbones_of(name) for name in args.backbones}
    if args.manyclass_dir:
        run_manyclass(args)
        return
    started = _results.start_run()
    splits = list(tasks(args.shots, args.seeds, args.test_limit))
    embedded = embed_tasks(args, splits)
    head_results = run_heads(args, splits, embedded)
    recipe_results = run_recipes(args, splits, embedded) if args.recipes else {}
    table = markdown(head_results, recipe_results, args)
    title = "Few-shot accuracy: heads and recipes"
    _results.finish_run(args, title, table, started, {**head_results, **recipe_results})


if __name__ == "__main__":
    main()
