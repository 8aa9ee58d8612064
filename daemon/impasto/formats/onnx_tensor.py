"""ONNX TensorProto messages: read (shape, type, small values) and written, without ``onnx``.

Graph rewrites (formats/onnx_model.py) read an initializer's or a node attribute's tensor to
know its shape and, for constants, its values; they write new initializers inline or pointing
at external weights.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from impasto.formats.protobuf import (
    encode_key,
    encode_string,
    encode_varint,
    fields,
    length_delimited,
    repeated_varints,
    signed,
    varint,
)

_TENSOR_TYPES: dict[int, str] = {1: "<f4", 6: "<i4", 7: "<i8", 10: "<f2", 11: "<f8"}
# Tensors up to this many elements have their values read (shapes, scales: what rewrites
# look at); bigger ones are weights, known by shape and type only, and copied as bytes.
CONSTANT_LIMIT = 4096


def tensor_proto(
    name: str,
    dims: tuple[int, ...],
    data_type: int,
    *,
    raw: bytes = b"",
    external: dict[str, str] | None = None,
) -> bytes:
    """A TensorProto holding ``raw`` (little-endian values) inline, or pointing at the
    ``external`` entries (``location``, ``offset``, ``length``) instead."""
    body = b"".join(encode_key(1, 0) + encode_varint(dim) for dim in dims)
    body += encode_key(2, 0) + encode_varint(data_type) + encode_string(8, name)
    if external is None:
        return body + length_delimited(9, raw)
    for key, value in external.items():
        body += length_delimited(13, encode_string(1, key) + encode_string(2, value))
    return body + encode_key(14, 0) + encode_varint(1)  # data_location: EXTERNAL


@dataclass
class Tensor:
    """A TensorProto's shape and type, and its values when the file holds them inline and
    they are no more than CONSTANT_LIMIT."""

    dims: tuple[int, ...]
    data_type: int
    values: np.ndarray | None = None


def _stored_values(buf: memoryview, number: int, wire: int, s: int, e: int) -> list[float | int]:
    """The values of one typed-data field of a TensorProto, packed or one per field."""
    if number == 4:  # float_data
        return list(struct.unpack(f"<{(e - s) // 4}f", buf[s:e]))
    if number == 10:  # double_data
        return list(struct.unpack(f"<{(e - s) // 8}d", buf[s:e]))
    return [signed(v) for v in repeated_varints(buf, wire, s, e)]  # int32_data, int64_data


def parse_tensor(buf: memoryview, start: int, end: int) -> Tensor:
    """The TensorProto in ``buf[start:end]``: shape and type, and values when held inline and
    no more than CONSTANT_LIMIT."""
    dims: list[int] = []
    data_type, external = 0, False
    raw: tuple[int, int] | None = None
    typed: dict[int, list[tuple[int, int, int]]] = {}  # field -> (wire, start, end) of each
    for number, wire, s, e in fields(buf, start, end):
        if number == 1:  # dims: packed, or one varint per field
            dims.extend(signed(v) for v in repeated_varints(buf, wire, s, e))
        elif number == 2 and wire == 0:
            data_type = varint(buf, s, e)[0]
        elif number == 9 and wire == 2:
            raw = (s, e)
        elif number == 13:  # external_data
            external = True
        elif number == 14 and wire == 0:  # data_location: 1 is EXTERNAL
            external = external or varint(buf, s, e)[0] == 1
        elif number in (4, 5, 7, 10):  # float_data, int32_data, int64_data, double_data
            typed.setdefault(number, []).append((wire, s, e))
    tensor = Tensor(tuple(dims), data_type)
    dtype = _TENSOR_TYPES.get(data_type)
    size = int(np.prod(dims, dtype=np.int64))
    if external or dtype is None or size > CONSTANT_LIMIT:
        return tensor
    # float16 values travel as int32 bit patterns; the others in their own field.
    field_number = {1: 4, 6: 5, 7: 7, 10: 5, 11: 10}[data_type]
    stored = [
        value
        for wire, s, e in typed.get(field_number, [])
        for value in _stored_values(buf, field_number, wire, s, e)
    ]
    if raw is not None:
        values = np.frombuffer(bytes(buf[raw[0] : raw[1]]), dtype)
    elif data_type == 10:
        values = np.array(stored, np.uint16).view(np.float16)
    else:
        values = np.array(stored, dtype)
    if values.size != size:
        return tensor
    tensor.values = np.array(values.reshape(dims), dtype=dtype[1:])
    return tensor
