"""Which convolutions of a network stay in float32 when it is quantized to int8.

Naive static int8 (every convolution quantized) loses little on plain
networks such as ResNets, but depthwise-separable networks (MobileNet,
EfficientNet-Lite) lose much more: the error of each quantized layer is
small, yet it accumulates over dozens of thin layers (removing any single
quantizer barely helps). Measured layer group by layer group, three kinds
of convolution carry most of it in such networks, and all three are
recognised from the graph's structure alone (no layer names):

* the **first** convolution, which sees the normalised pixels: its input
  quantization error is inherited by every later layer, and on CPUs
  without VNNI its weights also lose a bit to the overflow fix;
* **depthwise** convolutions (one input channel per group): each output
  is a sum of a handful of products, so rounding errors do not average
  out;
* **linear** convolutions, whose output reaches no activation (the
  projections of inverted residual blocks, "linear bottlenecks"): their
  outputs are signed, heavy-tailed, and summed into the residual stream
  that every later block reads.

The remaining convolutions (in such networks the 1x1 expansions, most of
the arithmetic) stay int8, so the quantized network is still faster than
float32. A network without depthwise convolutions keeps every convolution
in int8: there the loss is already small, and the first convolution (a
large 7x7 one in a ResNet) is too costly to give back to float32.

The rule runs on an ``openvino.Model`` (the names are the ones NNCF's
``IgnoredScope`` expects).
"""

from __future__ import annotations

# Written into the int8 graph's cache key: changing the rule must recalibrate.
RULE = "float32 where depthwise: first, depthwise and linear convolutions"

_CONVOLUTIONS = ("Convolution", "GroupConvolution")
_ACTIVATIONS = frozenset(
    {
        "Relu",
        "Clamp",
        "Maximum",
        "Minimum",
        "PRelu",
        "Elu",
        "Gelu",
        "Swish",
        "HSwish",
        "HSigmoid",
        "Sigmoid",
        "Mish",
        "SoftPlus",
        "Tanh",
    }
)
# Element-wise ops between a convolution and its activation: the bias, a
# folded normalisation, the residual sum. The walk passes through them.
_ELEMENTWISE = frozenset({"Add", "Multiply", "Subtract", "Divide"})
# Shape computations (dynamic padding) read a tensor without using its values.
_SHAPE_ONLY = frozenset({"ShapeOf"})


def _consumers(node):
    return [
        target.get_node()
        for output in node.outputs()
        for target in output.get_target_inputs()
        if target.get_node().get_type_name() not in _SHAPE_ONLY
    ]


def is_depthwise(conv):
    """A grouped convolution with one input channel per group."""
    if conv.get_type_name() != "GroupConvolution":
        return False
    weights = conv.input(1).get_partial_shape()  # (groups, out/groups, in/groups, kh, kw)
    return weights.rank.is_static and weights[2].is_static and weights[2].get_length() == 1


def is_linear(conv):
    """Whether no activation reads the convolution's output, through element-wise ops."""
    seen, frontier = set(), _consumers(conv)
    while frontier:
        node = frontier.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        kind = node.get_type_name()
        if kind in _ACTIVATIONS:
            return False
        if kind in _ELEMENTWISE:
            frontier.extend(_consumers(node))
    return True


def float32_layers(model):
    """Names of the convolutions of ``model`` (an ``openvino.Model``) to keep in float32.

    Parameters
    ----------
    model : openvino.Model

    Returns
    -------
    list of str
        In a network with depthwise convolutions: the first convolution,
        the depthwise ones and the linear ones, in graph order. Otherwise
        empty.
    """
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() in _CONVOLUTIONS]
    if not any(is_depthwise(conv) for conv in convs):
        return []
    keep = [conv for i, conv in enumerate(convs) if i == 0 or is_depthwise(conv) or is_linear(conv)]
    return [conv.get_friendly_name() for conv in keep]
