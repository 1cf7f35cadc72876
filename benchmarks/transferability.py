"""Do transferability scores rank candidate extractors as held-out accuracy does?

Usage (from the repository root)::

    python benchmarks/transferability.py [--seeds 0 1 2] [--write-results [FILE]]

Candidates: efficientnet_lite0/1/2 (real ImageNet weights) x their last four
layer groups (``stage5``, ``stage6``, ``stage7``, ``head_conv``) x ``avg`` /
``gem`` pooling: 24 extractors. ``head_conv`` + ``avg`` is the network's own
embedding and is run as ``layer=None, pooling=None`` (the same numbers), the
only candidate per network whose features feed its ImageNet classifier, so
LEEP and NCE exist for 3 of the 24.

Each network runs once per data set over all the images (train and test):
every candidate's features are read off that pass
(``sktransfer.selection._shared_pass.extract_shared``) and kept in memory.

* hymenoptera: scores on ``train/`` (244 images); truth = accuracy on
  ``val/`` (153) of a classifier trained on ``train/``.
* flowers: per seed, 20 training photos per class drawn at random (the draw
  of benchmarks/accuracy.py), all the other photos are the test set; scores
  on the 100 training photos, truth on the rest. The 5-per-class rows use
  benchmarks/accuracy.py's 5-per-class draw and its test set (the rest).

The features of each network's pass are cached in ``benchmarks/.cache/``
(git-ignored), keyed by the file list, the candidates and the library
version; a rerun reuses them and reports the extraction seconds recorded
when they were computed.

Truth classifier: ``StandardScaler()`` + ``LogisticRegression(max_iter=1000)``
("scaler+LR"); Kendall's tau is also given against plain
``LogisticRegression(C=1, max_iter=1000)`` ("LR"), the headline classifier
of benchmarks/accuracy.py. Scores: LogME, LEEP, NCE, 5-fold cross-validated
cosine 5-NN accuracy (knn) and standardised-LR accuracy (linear), all on
the training images only.

Timings: ``extract`` is the shared pass per network, split between train
and test by image count. Ranking with a score costs the train share of the
extraction plus the score's own time; evaluating every candidate costs the
whole extraction (train and test) plus a classifier fit per candidate, when
the candidates share the pass as here; extracting each candidate alone (as a
loop over extractors would) multiplies the extraction by the candidates per
network, an estimate given as "separate passes".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ALL_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
BACKBONES = ALL_BACKBONES
LAYERS = ("stage5", "stage6", "stage7", "head_conv")
POOLINGS = ("avg", "gem")
PER_NETWORK = len(LAYERS) * len(POOLINGS)
SCORE_NAMES = ("logme", "leep", "nce", "knn", "linear")
SMOKE = False  # --smoke: 20 images per hymenoptera split, 60 flowers photos


import _results  # noqa: E402
from accuracy import cached_arrays, data_dir, load_folder, split_per_class  # noqa: E402  the same data and draws as the accuracy benchmark


def candidates_of(backbone):
    from sktransfer import PretrainedFeatureExtractor

    out = {}
    for layer in LAYERS:
        for pooling in POOLINGS:
            if (layer, pooling) == ("head_conv", "avg"):
                ext = PretrainedFeatureExtractor(model=backbone)  # the network's own embedding
            else:
                ext = PretrainedFeatureExtractor(model=backbone, layer=layer, pooling=pooling)
            out[f"{backbone}/{layer}/{pooling}"] = ext
    return out


def cached_pass(what, backbone, paths, compute):
    """``compute()`` -> ({name: array}, seconds), kept in benchmarks/.cache between runs."""
    import sktransfer

    params = {
        "what": what,
        "backbone": backbone,
        "layers": LAYERS,
        "poolings": POOLINGS,
        "version": sktransfer.__version__,
    }
    arrays, seconds, _, _ = cached_arrays(f"transferability_{what}", paths, params, compute)
    return arrays, seconds


def extract(paths):
    """{candidate: features}, {candidate: source proba}, {backbone: seconds} for all images."""
    from sktransfer.selection._shared_pass import extract_shared, reads_source_head

    features, source, seconds = {}, {}, {}
    for backbone in BACKBONES:
        cands = candidates_of(backbone)

        def compute(cands=cands):
            feats, proba = extract_shared(list(cands.values()), paths, with_source=True)
            return {"__source__": proba, **{name.replace("/", "|"): f for name, f in zip(cands, feats)}}

        arrays, seconds[backbone] = cached_pass("shared", backbone, paths, compute)
        for name, ext in cands.items():
            features[name] = arrays[name.replace("/", "|")].astype(np.float64)
            if reads_source_head(ext):
                source[name] = arrays["__source__"]
        print(f"  {backbone}: {len(paths)} images in {seconds[backbone]:.1f} s", flush=True)
    return features, source, seconds


def extract_flip(paths):
    """Each network's own embedding with flip test-time augmentation: {backbone: features}, {backbone: s}."""
    from sktransfer import PretrainedFeatureExtractor
    from sktransfer.selection._shared_pass import extract_shared

    features, seconds = {}, {}
    for backbone in BACKBONES:

        def compute(backbone=backbone):
            (f,), _ = extract_shared([PretrainedFeatureExtractor(model=backbone, tta="flip")], paths, with_source=False)
            return {"flip": f}

        arrays, seconds[backbone] = cached_pass("flip", backbone, paths, compute)
        features[backbone] = arrays["flip"].astype(np.float64)
        print(f"  {backbone} + flip: {len(paths)} images in {seconds[backbone]:.1f} s", flush=True)
    return features, seconds


def feature_variants(features, flipped):
    """{(backbone, variant): features} for the multi-layer / TTA comparison."""
    out = {}
    for b in BACKBONES:
        own = features[f"{b}/head_conv/avg"]
        out[(b, "embedding")] = own
        out[(b, "embedding, flip TTA")] = flipped[b]
        out[(b, "stage7 + embedding (avg)")] = np.hstack([features[f"{b}/stage7/avg"], own])
        out[(b, "stage6 + stage7 + embedding (avg)")] = np.hstack(
            [features[f"{b}/stage6/avg"], features[f"{b}/stage7/avg"], own]
        )
    return out


def classifiers():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "scaler+LR": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "LR": lambda: LogisticRegression(C=1.0, max_iter=1000),
    }


def held_out(F_train, y_train, F_test, y_test):
    acc, fit_s = {}, 0.0
    for name, make in classifiers().items():
        t0 = time.perf_counter()
        clf = make().fit(F_train, y_train)
        acc[name] = float(np.mean(clf.predict(F_test) == y_test))
        if name == "scaler+LR":
            fit_s = time.perf_counter() - t0
    return acc, fit_s


def evaluate_split(features, source, seconds, n_all, train, test, y, seed):
    """Scores on train, truth on test, and their timings, for one split."""
    from scipy.stats import kendalltau

    from sktransfer.selection._ranking import make_cv, score_features

    names = list(features)
    y_train, y_test = y[train], y[test]
    train_share = {b: seconds[b] * len(train) / n_all for b in BACKBONES}
    per_cand = {n: train_share[n.split("/")[0]] / PER_NETWORK for n in names}
    table = score_features(
        names,
        {n: features[n][train] for n in names},
        {n: p[train] for n, p in source.items()},
        per_cand,
        y_train,
        SCORE_NAMES,
        "logme",
        make_cv(5, y_train, seed),
    )
    fit_total = 0.0
    for n in names:
        acc, fit_s = held_out(features[n][train], y_train, features[n][test], y_test)
        fit_total += fit_s
        for k, v in acc.items():
            table.loc[n, f"acc {k}"] = v
    taus = {}
    for score in SCORE_NAMES:
        ok = table[score].notna()
        for truth in classifiers():
            taus[(score, truth)] = (
                kendalltau(table.loc[ok, score], table.loc[ok, f"acc {truth}"]).statistic,
                int(ok.sum()),
            )
    share = sum(train_share.values())
    eval_ext = sum(seconds[b] * (len(train) + len(test)) / n_all for b in BACKBONES)
    times = {s: share + table[f"{s}_s"].sum() for s in SCORE_NAMES}
    times["evaluate (shared pass)"] = eval_ext + fit_total
    times["evaluate (separate passes)"] = eval_ext * PER_NETWORK + fit_total
    return table, taus, times


def run_hymenoptera():
    root = data_dir("hymenoptera")
    tr_paths, tr_y = load_folder(root / "train")
    te_paths, te_y = load_folder(root / "val")
    if SMOKE:
        tr_paths, tr_y, te_paths, te_y = tr_paths[::12], tr_y[::12], te_paths[::7], te_y[::7]
    paths = list(tr_paths) + list(te_paths)
    y = np.concatenate([tr_y, te_y])
    print(f"hymenoptera: {len(paths)} images", flush=True)
    features, source, seconds = extract(paths)
    flipped, flip_s = extract_flip(paths)
    train = np.arange(len(tr_paths))
    test = np.arange(len(tr_paths), len(paths))
    table, taus, times = evaluate_split(features, source, seconds, len(paths), train, test, y, 0)
    variants = {
        k: held_out(F[train], y[train], F[test], y[test])[0]["LR"]
        for k, F in feature_variants(features, flipped).items()
    }
    return {
        "tables": [table],
        "taus": [taus],
        "times": [times],
        "seconds": seconds,
        "n": len(paths),
        "variants": variants,
        "flip_s": flip_s,
        "per_backbone": {
            b: {
                "hymenoptera": table.loc[f"{b}/head_conv/avg", "acc LR"],
                "hymenoptera scaler+LR": table.loc[f"{b}/head_conv/avg", "acc scaler+LR"],
            }
            for b in BACKBONES
        },
    }


def run_flowers(seeds):
    paths, labels = load_folder(data_dir("flowers"))
    if SMOKE:
        keep = np.concatenate([np.flatnonzero(labels == c)[:60] for c in np.unique(labels)])
        paths, labels = [paths[i] for i in keep], labels[keep]
    print(f"flowers: {len(paths)} images ({len(seeds)} seeds)", flush=True)
    features, source, seconds = extract(list(paths))
    flipped, flip_s = extract_flip(list(paths))
    variant_features = feature_variants(features, flipped)
    y = np.asarray(labels)
    used = np.arange(len(y))
    out = {
        "tables": [],
        "taus": [],
        "times": [],
        "seconds": seconds,
        "n": len(used),
        "flip_s": flip_s,
        "variants20": {k: [] for k in variant_features},
        "variants5": {k: [] for k in variant_features},
        "per_backbone": {
            b: {"flowers20": [], "flowers20 scaler+LR": [], "flowers5": [], "flowers5 scaler+LR": []} for b in BACKBONES
        },
    }
    for seed in seeds:
        train, test_idx = split_per_class(y, 20, seed)
        table, taus, times = evaluate_split(features, source, seconds, len(used), train, test_idx, y, seed)
        out["tables"].append(table)
        out["taus"].append(taus)
        out["times"].append(times)
        five, test5 = split_per_class(y, 5, seed)
        for k, F in variant_features.items():
            for tr, te, key in ((train, test_idx, "variants20"), (five, test5, "variants5")):
                out[key][k].append(held_out(F[tr], y[tr], F[te], y[te])[0]["LR"])
        for b in BACKBONES:
            name = f"{b}/head_conv/avg"
            pb = out["per_backbone"][b]
            pb["flowers20"].append(table.loc[name, "acc LR"])
            pb["flowers20 scaler+LR"].append(table.loc[name, "acc scaler+LR"])
            acc5, _ = held_out(features[name][five], y[five], features[name][test5], y[test5])
            pb["flowers5"].append(acc5["LR"])
            pb["flowers5 scaler+LR"].append(acc5["scaler+LR"])
    return out


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f}" + (f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else "")


def report(hym, flo, seeds, total_s):
    lines = []
    lines.append("### Kendall's tau between each score and held-out accuracy (higher is better)\n")
    lines.append(
        "| score | hymenoptera, vs scaler+LR | hymenoptera, vs LR | flowers 20/class, vs scaler+LR "
        "| flowers 20/class, vs LR | candidates |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|")
    for score in SCORE_NAMES:
        h = hym["taus"][0]
        f_s = [t[(score, "scaler+LR")][0] for t in flo["taus"]]
        f_l = [t[(score, "LR")][0] for t in flo["taus"]]
        lines.append(
            f"| {score} | {h[(score, 'scaler+LR')][0]:.3f} | {h[(score, 'LR')][0]:.3f} | {_mean_std(f_s)} "
            f"| {_mean_std(f_l)} "
            f"| {h[(score, 'LR')][1]} |"
        )
    lines.append(f"\nflowers: mean ± std over seeds {list(seeds)}.\n")
    lines.append("### Wall time: ranking every candidate by a score vs evaluating every one (seconds)\n")
    lines.append("| | hymenoptera | flowers 20/class (mean over seeds) |")
    lines.append("|---|---:|---:|")
    for key in list(SCORE_NAMES) + ["evaluate (shared pass)", "evaluate (separate passes)"]:
        lines.append(f"| {key} | {hym['times'][0][key]:.1f} | {np.mean([t[key] for t in flo['times']]):.1f} |")
    lines.append(
        "\nA score's time is the training images' share of the shared extraction plus the score "
        f"itself over the {len(BACKBONES) * PER_NETWORK} candidates; "
        f'"separate passes" multiplies the extraction by the {PER_NETWORK} candidates '
        "per network (an estimate, not run).\n"
    )
    lines.append("### Frozen features (each network's own embedding) + classifier, accuracy per backbone\n")
    lines.append(
        "| backbone | hymenoptera val, LR | scaler+LR | flowers 20/class, LR | scaler+LR | flowers 5/class, LR "
        f"| scaler+LR | images/s (one pass, {PER_NETWORK} readouts) |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for b in BACKBONES:
        h, f = hym["per_backbone"][b], flo["per_backbone"][b]
        rate = (hym["n"] + flo["n"]) / (hym["seconds"][b] + flo["seconds"][b])
        lines.append(
            f"| {b} | {h['hymenoptera']:.3f} | {h['hymenoptera scaler+LR']:.3f} | {_mean_std(f['flowers20'])} | "
            f"{_mean_std(f['flowers20 scaler+LR'])} | {_mean_std(f['flowers5'])} | "
            f"{_mean_std(f['flowers5 scaler+LR'])} | {rate:.1f} |"
        )
    lines.append(
        f'\n"images/s" is the rate of the shared pass that reads all {PER_NETWORK} candidates (and the ImageNet head) '
        "off one forward pass, engine auto.\n"
    )
    lines.append(
        '### Multi-layer features (`layer=[...]`) and flip test-time augmentation (`tta="flip"`), LR(C=1) accuracy\n'
    )
    lines.append("| backbone | features | hymenoptera val | flowers 20/class | flowers 5/class |")
    lines.append("|---|---|---:|---:|---:|")
    for (b, variant), acc in hym["variants"].items():
        lines.append(
            f"| {b} | {variant} | {acc:.3f} | {_mean_std(flo['variants20'][(b, variant)])} | "
            f"{_mean_std(flo['variants5'][(b, variant)])} |"
        )
    lines.append("\nFlip TTA costs a second forward pass per image: ")
    lines.append(
        ", ".join(
            f"{b} {(hym['n'] + flo['n']) / (hym['flip_s'][b] + flo['flip_s'][b]):.1f} images/s with flip"
            for b in BACKBONES
        )
        + ".\n"
    )
    lines.append("\n### Ranking on hymenoptera (LogME order) with held-out accuracy\n")
    t = hym["tables"][0]
    lines.append("| candidate | logme | leep | nce | knn | linear | acc scaler+LR | acc LR |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in t.iterrows():
        cells = " | ".join(
            "" if np.isnan(row[c]) else f"{row[c]:.3f}"
            for c in ("logme", "leep", "nce", "knn", "linear", "acc scaler+LR", "acc LR")
        )
        lines.append(f"| {name} | {cells} |")
    lines.append(f"\nTotal run time {total_s:.0f} s.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="a few images per set, to check the script runs")
    parser.add_argument("--backbones", nargs="+", default=list(ALL_BACKBONES))
    _results.add_argument(parser)
    args = parser.parse_args()
    global SMOKE, BACKBONES
    BACKBONES = tuple(args.backbones)
    if args.smoke:
        SMOKE = True
    t0 = time.perf_counter()
    hym = run_hymenoptera()
    flo = run_flowers(args.seeds)
    body = report(hym, flo, args.seeds, time.perf_counter() - t0)
    print(body)
    if args.write_results:
        _results.write(
            args.write_results, "Transferability: ranking backbones, layers and poolings before training", body
        )


if __name__ == "__main__":
    main()
