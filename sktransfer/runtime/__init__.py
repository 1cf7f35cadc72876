"""The inference runtime: which engine runs a frozen network, exporting, running, caching and quantizing its graph.

The feature extractor's embedder and the fine-tuner's frozen prefix are the
same kind of thing, a fixed function of a uint8 image batch, and run on the
same machinery, each concept in one place:

* engine choice and precision (:func:`select_engine`,
  :func:`effective_precision`): one order and one set of errors;
* one ONNX export of a module with N named outputs (:func:`export_onnx`,
  :func:`exported_graph`), kept in a content-keyed disk cache
  (:func:`cached_graph`);
* the runners, callables ``runner(batch) -> list of float32 arrays``
  (:func:`make_runner`);
* static int8 quantization (:func:`calibrated_graph`);
* what determines an output (:func:`describe_output`, :func:`output_key`),
  from which every cache and store key is derived.

Importing this package imports neither torch nor ONNX Runtime, OpenVINO or
NNCF; each is imported when a name that needs it is first used.
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:  # the same names, for static tools (the lazy ones below are found at run time)
    from ._engines import (  # noqa: F401
        CPU_ORDER,
        ENGINES,
        GRAPH_ENGINES,
        PRECISIONS,
        cpu_capabilities,
        effective_precision,
        engine_available,
        missing_engine_error,
        quantizer_available,
        reselect_engine,
        select_engine,
        unrunnable_engine_error,
    )
    from ._graphs import (  # noqa: F401
        CACHE_ENV,
        OPSET,
        cache_root,
        cached_graph,
        export_onnx,
        exported_graph,
        graph_folder,
        graph_key,
        output_names,
    )
    from ._output_key import describe_output, output_key  # noqa: F401
    from ._quantize import calibrated_graph, calibration_images, calibration_key  # noqa: F401
    from ._runners import OnnxRuntimeRunner, OpenVinoRunner, TorchRunner, make_runner  # noqa: F401

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "CPU_ORDER": "._engines",
        "ENGINES": "._engines",
        "GRAPH_ENGINES": "._engines",
        "PRECISIONS": "._engines",
        "cpu_capabilities": "._engines",
        "effective_precision": "._engines",
        "engine_available": "._engines",
        "missing_engine_error": "._engines",
        "quantizer_available": "._engines",
        "reselect_engine": "._engines",
        "select_engine": "._engines",
        "unrunnable_engine_error": "._engines",
        "OPSET": "._graphs",
        "export_onnx": "._graphs",
        "exported_graph": "._graphs",
        "output_names": "._graphs",
        "CACHE_ENV": "._graphs",
        "cache_root": "._graphs",
        "cached_graph": "._graphs",
        "graph_folder": "._graphs",
        "graph_key": "._graphs",
        "describe_output": "._output_key",
        "output_key": "._output_key",
        "calibrated_graph": "._quantize",
        "calibration_images": "._quantize",
        "calibration_key": "._quantize",
        "OnnxRuntimeRunner": "._runners",
        "OpenVinoRunner": "._runners",
        "TorchRunner": "._runners",
        "make_runner": "._runners",
    },
)
