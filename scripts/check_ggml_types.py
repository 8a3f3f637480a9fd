"""Compare inferform/data/ggml_types.yaml with the gguf package's GGML_QUANT_SIZES and print differences.

gguf-py mirrors ggml's type table; where they differ (Q8_1, types newer than the installed gguf) the catalog
follows ggml's own source and says so in its header. `python scripts/check_ggml_types.py`.
"""

from __future__ import annotations

import sys

from gguf.constants import GGML_QUANT_SIZES

from inferform.catalog.quants import load_ggml_types


def differences() -> list[str]:
    ours = load_ggml_types()
    out = []
    for qtype, (block, size) in GGML_QUANT_SIZES.items():
        row = ours.get(qtype.name)
        if row is None:
            out.append(f"{qtype.name}: in gguf, missing from the catalog")
        elif (row.block_size, row.type_size, row.id) != (block, size, int(qtype)):
            out.append(f"{qtype.name}: catalog ({row.id}, {row.block_size}, {row.type_size}) vs gguf "
                       f"({int(qtype)}, {block}, {size})")
    return out


if __name__ == "__main__":
    diffs = differences()
    print("\n".join(diffs) or "catalog matches gguf's GGML_QUANT_SIZES")
    sys.exit(0)
