"""File formats read and written without their libraries: PNG text chunks with A1111 infotext,
safetensors headers and tensors, and the protobuf wire format of ONNX files.

The bottom layer: the engine, the services and the worker import it; it imports none of them.
"""
