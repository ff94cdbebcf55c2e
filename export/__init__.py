"""The torch-side model pipeline: checkpoints in, guardcli bundles out.

``python -m export.convert`` turns a GuardReasoner checkpoint (hub id, local directory or
``.gguf`` file) into a verified onnxruntime-genai bundle; see docs/conversion.md. Nothing in
guardcli imports this package (the runtime stays torch-free).
"""

from __future__ import annotations

import argparse

from guardcli.errors import ExitCode, GuardError


class ConvertError(GuardError):
    """A conversion failure the user can act on: printed as one line, exit status 1."""

    exit_code = ExitCode.FLAGGED  # 1: "the conversion did not produce a good bundle"


class TrainError(GuardError):
    """A training failure the user can act on: printed as one line, exit status 1."""

    exit_code = ExitCode.FLAGGED


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts: an int of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
