"""tomobile.export: the `tomobile` CLI and one exporter per format (onnx, coreml, executorch)."""
