"""Units every room shares: binary sizes (llama.cpp and the catalogs count in MiB and GiB) and how a price prints.

One home, so a table, an explanation and a status line print the same number the same way.
"""

MIB = 1024**2
GIB = 1024**3


def usd(x: float | None) -> str:
    """'$1.234' (four significant figures); '?' for a price nobody knows."""
    return "?" if x is None else f"${x:,.4g}"


def gib(n_bytes: float) -> str:
    """'12.34 GiB': how sizes print in tables, explanations and status lines."""
    return f"{n_bytes / GIB:.2f} GiB"
