"""Impasto: a local Stable Diffusion daemon on ONNX Runtime."""

__version__ = "0.1.0"
