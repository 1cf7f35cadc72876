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

from .._lazy import attach_type_checking

# The public names, imported for static tools only (type checkers, an
# editor's go-to-definition); at run time each is imported on first use.
if TYPE_CHECKING:
    from ._engines import CPU_ORDER as CPU_ORDER
    from ._engines import ENGINES as ENGINES
    from ._engines import GRAPH_ENGINES as GRAPH_ENGINES
    from ._engines import PRECISIONS as PRECISIONS
    from ._engines import cpu_capabilities as cpu_capabilities
    from ._engines import effective_precision as effective_precision
    from ._engines import engine_available as engine_available
    from ._engines import inference_batch_size as inference_batch_size
    from ._engines import missing_engine_error as missing_engine_error
    from ._engines import quantizer_available as quantizer_available
    from ._engines import reselect_engine as reselect_engine
    from ._engines import select_engine as select_engine
    from ._engines import unrunnable_engine_error as unrunnable_engine_error
    from ._graphs import CACHE_ENV as CACHE_ENV
    from ._graphs import OPSET as OPSET
    from ._graphs import ExportError as ExportError
    from ._graphs import cache_root as cache_root
    from ._graphs import cached_graph as cached_graph
    from ._graphs import export_onnx as export_onnx
    from ._graphs import exported_graph as exported_graph
    from ._graphs import graph_folder as graph_folder
    from ._graphs import graph_key as graph_key
    from ._graphs import output_names as output_names
    from ._output_key import code_identity as code_identity
    from ._output_key import describe_output as describe_output
    from ._output_key import output_key as output_key
    from ._quantize import calibrated_graph as calibrated_graph
    from ._quantize import calibration_images as calibration_images
    from ._quantize import calibration_key as calibration_key
    from ._runners import OnnxRuntimeRunner as OnnxRuntimeRunner
    from ._runners import OpenVinoRunner as OpenVinoRunner
    from ._runners import TorchRunner as TorchRunner
    from ._runners import concurrent_callers as concurrent_callers
    from ._runners import make_runner as make_runner
    from ._runners import set_concurrent_callers as set_concurrent_callers

__getattr__, __dir__, __all__ = attach_type_checking(__name__, __file__)
