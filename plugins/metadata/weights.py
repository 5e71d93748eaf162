"""Weights facts from file headers, without reading the weights.

* safetensors: an 8-byte little-endian length N, then N bytes of JSON naming every
  tensor's dtype, shape and byte range. The ``safetensors`` package reads headers only
  from a path (it maps the file), and the objects may be on S3, so the header is read
  here from two ranged reads at most, its length checked against a cap first.
* GGUF: magic, version, tensor and key counts, the metadata keys and values, then one
  entry per tensor (name, shape, type). Read sequentially through a window of ranged
  reads, every count and length checked against caps and against the file's size; the
  ``gguf`` package gives the value and tensor type tables and the file type names.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from .ranged import BadFile, Cursor, Ranged

SAFETENSORS_FIRST_READ = 16 * 1024  # most headers fit: one ranged read per file
MAX_SHAPE_DIMS = 16


def safetensors_facts(r: Ranged, *, max_header: int) -> dict[str, Any]:
    """{"parameters": {dtype: n}, "total": n, "tensors": n, "metadata": {...}} of a safetensors file."""
    if r.size < 8:
        raise BadFile(f"{r.name}: {r.size} bytes is too short for a safetensors file")
    head = r.read(0, min(r.size, 8 + SAFETENSORS_FIRST_READ))
    (length,) = struct.unpack("<Q", head[:8])
    if length > max_header:
        raise BadFile(f"{r.name}: the safetensors header claims {length} bytes of JSON, over the limit of "
                      f"{max_header}")
    if 8 + length > r.size:
        raise BadFile(f"{r.name}: truncated: the safetensors header claims {length} bytes, the file has {r.size - 8}")
    raw = head[8:8 + length]
    if len(raw) < length:
        raw += r.read(len(head), 8 + length)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadFile(f"{r.name}: the safetensors header is not JSON: {str(exc)[:120]}") from None
    if not isinstance(header, dict):
        raise BadFile(f"{r.name}: the safetensors header is not a JSON object")
    data_size = r.size - 8 - length
    parameters: dict[str, int] = {}
    tensors = 0
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dtype, count, end = _tensor(r.name, name, spec)
        if end > data_size:
            raise BadFile(f"{r.name}: truncated: tensor {name[:80]!r} ends at byte {end} of the data, "
                          f"which has {data_size}")
        parameters[dtype] = parameters.get(dtype, 0) + count
        tensors += 1
    meta = header.get("__metadata__")
    metadata = {str(k)[:100]: str(v)[:200] for k, v in list(meta.items())[:32]} if isinstance(meta, dict) else {}
    return {"parameters": parameters, "total": sum(parameters.values()), "tensors": tensors, "metadata": metadata}


def _tensor(file: str, name: str, spec: Any) -> tuple[str, int, int]:
    bad = f"{file}: tensor {name[:80]!r} in the safetensors header"
    if not isinstance(spec, dict):
        raise BadFile(f"{bad} is not an object")
    dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
    if not isinstance(dtype, str) or not dtype.isalnum() or len(dtype) > 16:
        raise BadFile(f"{bad} has no valid dtype")
    if (not isinstance(shape, list) or len(shape) > MAX_SHAPE_DIMS
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise BadFile(f"{bad} has no valid shape")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise BadFile(f"{bad} has no valid data_offsets")
    return dtype.upper(), math.prod(shape), offsets[1]


# -- GGUF -----------------------------------------------------------------------------------------
GGUF_MAGIC = b"GGUF"
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
MAX_KEY = 64 * 1024
MAX_KEPT_STRING = 256  # longer values (chat templates, ...) are skipped, not kept
MAX_ARRAY = 1 << 28


def gguf_facts(r: Ranged, *, max_keys: int, max_tensors: int) -> dict[str, Any]:
    """{"architecture", "context_length", "file_type", "total", "tensors", "name"} of a GGUF file."""
    import gguf  # numpy comes with it: imported when a GGUF file is first read

    c = Cursor(r)
    if c.take(4) != GGUF_MAGIC:
        raise BadFile(f"{r.name}: not a GGUF file (bad magic)")
    (version,) = struct.unpack("<I", c.take(4))
    order = "<"
    if version & 0xFFFF == 0:  # written big-endian
        order, version = ">", struct.unpack(">I", struct.pack("<I", version))[0]
    if version not in (2, 3):
        raise BadFile(f"{r.name}: GGUF version {version} is not supported (2 and 3 are)")
    n_tensors, n_keys = struct.unpack(order + "QQ", c.take(16))
    if n_keys > max_keys:
        raise BadFile(f"{r.name}: the GGUF file claims {n_keys} metadata keys, over the limit of {max_keys}")
    if n_tensors > max_tensors:
        raise BadFile(f"{r.name}: the GGUF file claims {n_tensors} tensors, over the limit of {max_tensors}")
    kept: dict[str, Any] = {}
    for _ in range(n_keys):
        key = _string(c, order, MAX_KEY, r.name).decode("utf-8", "replace")
        (kind,) = struct.unpack(order + "I", c.take(4))
        value = _value(c, order, kind, r.name)
        if value is not None:
            kept[key] = value
    total = 0
    types = gguf.GGML_QUANT_SIZES
    for _ in range(n_tensors):
        _string(c, order, MAX_KEY, r.name, keep=False)
        (dims,) = struct.unpack(order + "I", c.take(4))
        if dims > MAX_SHAPE_DIMS:
            raise BadFile(f"{r.name}: a GGUF tensor claims {dims} dimensions")
        shape = struct.unpack(order + "Q" * dims, c.take(8 * dims))
        ttype, _offset = struct.unpack(order + "IQ", c.take(12))
        try:
            known = gguf.GGMLQuantizationType(ttype) in types
        except ValueError:
            known = False
        if not known:
            raise BadFile(f"{r.name}: a GGUF tensor has unknown type {ttype}")
        total += math.prod(shape)
    arch = kept.get("general.architecture")
    file_type = kept.get("general.file_type")
    out: dict[str, Any] = {"total": total, "tensors": n_tensors}
    if isinstance(arch, str):
        out["architecture"] = arch
        ctx = kept.get(f"{arch}.context_length")
        if isinstance(ctx, int):
            out["context_length"] = ctx
    if isinstance(file_type, int):
        try:
            out["file_type"] = gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            out["file_type"] = str(file_type)
    for key in ("general.name", "general.license", "general.size_label"):
        if isinstance(kept.get(key), str):
            out[key.removeprefix("general.")] = kept[key]
    return out


def _string(c: Cursor, order: str, cap: int, name: str, *, keep: bool = True) -> bytes:
    (n,) = struct.unpack(order + "Q", c.take(8))
    if n > cap:
        raise BadFile(f"{name}: a GGUF string claims {n} bytes, over the limit of {cap}")
    if keep:
        return c.take(n)
    c.skip(n)
    return b""


def _value(c: Cursor, order: str, kind: int, name: str) -> Any:
    """A metadata value: scalars and short strings are returned, the rest skipped (None)."""
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(order + fmt, c.take(struct.calcsize(fmt)))[0]
    if kind == _STRING:
        (n,) = struct.unpack(order + "Q", c.take(8))
        if n > c.source.size:
            raise BadFile(f"{name}: a GGUF string claims {n} bytes, more than the file holds")
        if n > MAX_KEPT_STRING:
            c.skip(n)
            return None
        return c.take(n).decode("utf-8", "replace")
    if kind == _ARRAY:
        item, count = struct.unpack(order + "IQ", c.take(12))
        if count > MAX_ARRAY:
            raise BadFile(f"{name}: a GGUF array claims {count} items, over the limit of {MAX_ARRAY}")
        if item in _SCALARS:
            c.skip(count * struct.calcsize(_SCALARS[item]))
        elif item == _STRING:
            for _ in range(count):
                (n,) = struct.unpack(order + "Q", c.take(8))
                c.skip(n)
        elif item == _ARRAY:
            for _ in range(count):
                inner, inner_count = struct.unpack(order + "IQ", c.take(12))
                if inner not in _SCALARS:
                    raise BadFile(f"{name}: nested GGUF arrays of type {inner} are not supported")
                c.skip(inner_count * struct.calcsize(_SCALARS[inner]))
        else:
            raise BadFile(f"{name}: a GGUF array has unknown item type {item}")
        return None
    raise BadFile(f"{name}: a GGUF metadata value has unknown type {kind}")
