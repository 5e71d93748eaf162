"""Real model and data files for the metadata plugin's tests and benchmark, written by the
libraries that define the formats: safetensors by the ``safetensors`` package, GGUF by
``gguf.GGUFWriter``, Parquet by pyarrow; and the bad ones, made from real ones."""

from __future__ import annotations

import io
import json
import struct
import tempfile
from pathlib import Path

import numpy as np


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.numpy import save

    return save(tensors, metadata=metadata)


def tiny_llama() -> dict[str, np.ndarray]:
    """A few tensors of two dtypes: 2*8*16 + 16 float16 and 8*16 float32 parameters."""
    return {"model.embed_tokens.weight": np.zeros((8, 16), dtype=np.float16),
            "lm_head.weight": np.ones((8, 16), dtype=np.float16),
            "model.norm.weight": np.ones((16,), dtype=np.float16),
            "model.layers.0.mlp.weight": np.zeros((8, 16), dtype=np.float32)}


def gguf_bytes(*, arch: str = "llama", context_length: int = 4096, file_type: int = 15,
               tensors: dict[str, np.ndarray] | None = None, extra_keys: int = 0, name: str = "tiny") -> bytes:
    """A GGUF file written by gguf.GGUFWriter (file_type 15: MOSTLY_Q4_K_M)."""
    import gguf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.gguf"
        w = gguf.GGUFWriter(str(path), arch)
        w.add_name(name)
        w.add_context_length(context_length)
        w.add_file_type(file_type)
        w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "hello", "world"])
        w.add_string("tokenizer.chat_template", "{{ messages }}" * 100)
        for i in range(extra_keys):
            w.add_uint32(f"test.key.{i}", i)
        for tname, array in (tensors or {"token_embd.weight": np.zeros((32, 8), dtype=np.float32),
                                          "output.weight": np.ones((32, 8), dtype=np.float16)}).items():
            w.add_tensor(tname, array)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path.read_bytes()


def parquet_bytes(rows: int, *, image: bool = False) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, object] = {"text": [f"row {i}" for i in range(rows)], "label": list(range(rows))}
    if image:
        columns["image"] = [{"bytes": b"\x89PNG", "path": f"{i}.png"} for i in range(rows)]
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def safetensors_header_only(tensors: dict[str, tuple[str, list[int]]]) -> tuple[bytes, int]:
    """A real safetensors header for tensors too big to write ({name: (dtype, shape)}), and
    the size the whole file has: write the header, then make the file that size (sparse)."""
    widths = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "F8_E4M3": 1}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = int(np.prod(shape)) * widths[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    head = struct.pack("<Q", len(raw)) + raw
    return head, len(head) + offset
