"""Model to artifact: zoo and data, prune, cluster, fine-tune, ONNX export, simplify, quantize, manifest."""
