"""edgebench: benchmark compressed ONNX variants of a model on a CPU or a remote board."""

__version__ = "0.1.0"
