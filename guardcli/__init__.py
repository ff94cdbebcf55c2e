"""guardcli: an offline GuardReasoner guard for the command line and for Python.

    import guardcli

    guard = guardcli.load()                       # the CLI's model, verified
    verdict = guard.classify("How do I pick a lock?", response=None)
    verdict.request.value                         # "harmful" / "unharmful"

See guardcli.api. Importing ``guardcli`` is cheap: the names below load on first use, and the
runtime (onnxruntime-genai, numpy) only when a model is opened. The runtime package stays
torch-free; see tests/test_import_contract.py.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "load": "guardcli.api",
    "GuardModel": "guardcli.api",
    "Sample": "guardcli.core.records",
    "Result": "guardcli.core.records",
    "Verdict": "guardcli.core.records",
    "Label": "guardcli.core.records",
    "Scores": "guardcli.core.records",
    "GuardError": "guardcli.errors",
    "InputError": "guardcli.errors",
    "ModelError": "guardcli.errors",
    "UsageError": "guardcli.errors",
    "ExitCode": "guardcli.errors",
}

__all__ = [  # _EXPORTS and __version__ (tests/test_api.py checks each resolves)
    "ExitCode",
    "GuardError",
    "GuardModel",
    "InputError",
    "Label",
    "ModelError",
    "Result",
    "Sample",
    "Scores",
    "UsageError",
    "Verdict",
    "__version__",
    "load",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ loads them
    from guardcli.api import GuardModel, load
    from guardcli.core.records import Label, Result, Sample, Scores, Verdict
    from guardcli.errors import ExitCode, GuardError, InputError, ModelError, UsageError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guardcli' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
