"""The torch-side model pipeline: checkpoints in, guardcli bundles out.

``python -m export.convert`` turns a GuardReasoner checkpoint (hub id, local directory or
``.gguf`` file) into a verified onnxruntime-genai bundle; see docs/conversion.md. Nothing in
guardcli imports this package (the runtime stays torch-free).
"""

from __future__ import annotations

import argparse

from guardcli.errors import ExitCode, GuardError


class ExportError(GuardError):
    """A failure of the export pipeline the user can act on (export.cli prints it as one line)."""

    exit_code = ExitCode.MODEL  # 3: no model came out (a source that cannot be read, a build)


class ConvertError(ExportError):
    """The conversion cannot make a bundle from this source: exit status 3 (ExitCode.MODEL).
    Bad arguments raise guardcli's UsageError (2); a bundle that fails validation exits 1."""


class TrainError(ExportError):
    """Training cannot run on these options, data or output directory: exit status 2."""

    exit_code = ExitCode.USAGE


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts: an int of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
