"""The benchmarks guardcli knows by name, and which task each one's bare labels score.

Names are spelled as in the GuardReasoner repository (``XSTestReponseHarmful``, sic), and a
file is recognised by its name (numbering and suffix removed) or its folder's, so both
``0_5_harmbench_response.json`` and ``HarmBenchResponse/generated_predictions.jsonl`` work.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import PurePath

from guardcli.core.tasks import NAMES, Task
from guardcli.errors import InputError, UsageError, one_of


@dataclass(frozen=True)
class Benchmark:
    name: str  # as the GuardReasoner repository spells it (XSTestReponseHarmful, sic)
    task: Task


_P, _R, _F = Task.PROMPT, Task.RESPONSE, Task.REFUSAL
_KNOWN = {
    "simplesafetytests": Benchmark("SimpleSafetyTests", _P),
    "aegissafetytest": Benchmark("AegisSafetyTest", _P),
    "harmbenchprompt": Benchmark("HarmBenchPrompt", _P),
    "toxicchat": Benchmark("ToxicChat", _P),
    "openaimoderation": Benchmark("OpenAIModeration", _P),
    "wildguardtest": Benchmark("WildGuardTest", _P),
    "wildguardtestprompt": Benchmark("WildGuardTest", _P),
    "harmbenchresponse": Benchmark("HarmBenchResponse", _R),
    "xstestreponseharmful": Benchmark("XSTestReponseHarmful", _R),
    "xstestresponseharmful": Benchmark("XSTestReponseHarmful", _R),
    "saferlhf": Benchmark("SafeRLHF", _R),
    "beavertails": Benchmark("BeaverTails", _R),
    "wildguardtestresponse": Benchmark("WildGuardTest", _R),
    "xstestresponserefusal": Benchmark("XSTestResponseRefusal", _F),
    "wildguardtestrefusal": Benchmark("WildGuardTest", _F),
}
# /work/shared/README.md split rule: evaluation only, never training data for a shipped model.
HELD_OUT = ("SimpleSafetyTests", "SafeRLHF", "BeaverTails")
# GuardReasoner's benchmark files are numbered: 0_5_harmbench_response.json.
_NUMBERED = re.compile(r"^\d+_[0-9a-z]_", re.IGNORECASE)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def benchmark_of(name: str | os.PathLike[str]) -> Benchmark | None:
    """The benchmark a name or file path is, or None.

    Tries the file name (numbering and suffix removed), then the parent folder, the layout of
    the GuardReasoner repository (``data/test/1B/HarmBenchResponse/generated_predictions.jsonl``).
    """
    path = PurePath(name)
    for part in (path.name, path.parent.name):
        stem = part.split(".", 1)[0] if part.lower().endswith((".json", ".jsonl")) else part
        found = _KNOWN.get(_key(_NUMBERED.sub("", stem)))
        if found is not None:
            return found
    return None


def parse_task(task: str | Task) -> Task:
    try:
        return Task(str(task).lower())
    except ValueError:
        raise UsageError(f"unknown task {task!r}", hint="use " + one_of(NAMES)) from None


def task_of(name: str | os.PathLike[str], task: str | Task | None = None) -> Task:
    """Which task a bare label in ``name`` scores: ``task`` if given, else the benchmark's."""
    if task is not None:
        return parse_task(task)
    found = benchmark_of(name)
    if found is None:
        raise InputError(
            f"{name}: cannot tell which task its bare labels score",
            hint="name the file after its benchmark (e.g. HarmBenchResponse.jsonl) "
            f"or pass the task (--task {'|'.join(NAMES)})",
        )
    return found.task
