"""Read ``.safetensors`` files into numpy arrays: an 8-byte header length, a JSON header, bytes.

Our own reader rather than the ``safetensors`` package: the format is this small, and numpy
has no bfloat16, which LoRAs often use; here bf16 widens to float32 on read.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

_DTYPES: dict[str, type[np.generic]] = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
MAX_HEADER = 100 * 1024 * 1024  # the format's own limit


class SafetensorsError(ValueError):
    """A file is not a readable .safetensors file; the message names it (by its file name:
    messages reach job errors and API answers, which never carry a local path)."""


def holds_lora(header: dict[str, object]) -> bool:
    """Whether a header's tensors are a LoRA's: kohya (``lora_unet_...``), diffusers and PEFT
    (``...lora_A.weight``, ``...lora.down.weight``) names all say ``lora``."""
    return any("lora" in key for key in header if key != "__metadata__")


def read_header(path: Path) -> dict[str, object]:
    """The JSON header of ``path`` (``__metadata__`` included), read without the tensors."""
    with Path(path).open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path.name}: too short to be a .safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER or length + 8 > Path(path).stat().st_size:
            raise SafetensorsError(f"{path.name}: safetensors header is longer than the file")
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SafetensorsError(f"{path.name}: safetensors header is not JSON") from exc
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path.name}: safetensors header is not an object")
    return header


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of ``path`` (bf16 as float32) and the header's ``__metadata__`` strings."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SafetensorsError(f"{Path(path).name}: cannot read ({exc.strerror})") from exc
    if len(data) < 8:
        raise SafetensorsError(f"{Path(path).name}: too short to be a .safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > MAX_HEADER or 8 + length > len(data):
        raise SafetensorsError(f"{Path(path).name}: safetensors header is longer than the file")
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"{Path(path).name}: header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise SafetensorsError(f"{Path(path).name}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + length :]
    tensors = {}
    for name, info in header.items():
        tensors[name] = _tensor(path, name, info, body)
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _tensor(path: Path, name: str, info: object, body: memoryview) -> np.ndarray:
    try:
        assert isinstance(info, dict)
        dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        start, end = int(start), int(end)
        shape = tuple(int(s) for s in shape)
    except (AssertionError, KeyError, TypeError, ValueError):
        problem = f"{Path(path).name}: tensor {name!r} has a malformed entry"
        raise SafetensorsError(problem) from None
    if not 0 <= start <= end <= len(body):
        raise SafetensorsError(f"{Path(path).name}: tensor {name!r} lies outside the file")
    raw = body[start:end]
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == "BF16":
        if len(raw) != 2 * count:
            raise SafetensorsError(f"{Path(path).name}: tensor {name!r} has the wrong size")
        # bfloat16 is the top half of a float32.
        wide = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return wide.view(np.float32).reshape(shape)
    if dtype not in _DTYPES:
        raise SafetensorsError(f"{Path(path).name}: tensor {name!r} has unsupported dtype {dtype}")
    np_dtype = np.dtype(_DTYPES[dtype]).newbyteorder("<")
    if len(raw) != np_dtype.itemsize * count:
        raise SafetensorsError(f"{Path(path).name}: tensor {name!r} has the wrong size")
    return np.frombuffer(raw, dtype=np_dtype).reshape(shape).copy()
