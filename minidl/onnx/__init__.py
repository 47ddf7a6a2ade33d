"""ONNX export and import: ``minidl.onnx.export(model, example_input, path)`` and
``minidl.onnx.load(path) -> nn.Module``. Needs the ``onnx`` package (and ``onnxruntime`` to
run the exported files)."""
from .export import MODULE_EXPORTERS, FUNCTION_EXPORTERS, OnnxExportError, export, to_model_proto  # noqa: F401
from .load import GraphModule, IMPORTERS, OnnxImportError, load  # noqa: F401
