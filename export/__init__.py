"""tomobile.export: one exporter per format (onnx, coreml, executorch), the op check, the pipeline
(stage -> validate -> finalize) and split export."""
