"""tomobile.export: one exporter per format (onnx, coreml, executorch, coreai), the op check, the
pipeline (stage -> validate -> finalize) and split export."""
