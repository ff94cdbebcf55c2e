"""``--format sarif``: flagged samples as SARIF 2.1.0, the format code-scanning tools read
(GitHub's upload-sarif, GitLab, VS Code's SARIF viewer), so a flagged prompt shows inline in
the file and at the line it came from.

One result per sample that fails the gate (``--fail-on``): its rule names the flagged task
(``harmful-request``, else ``harmful-response``; ``flagged_tasks`` lists both when both are),
or ``unjudged`` for a sample the model gave no verdict on (the gate fails closed on it too).
The message is the verdict, then the model's reasoning when it wrote one; the three labels,
scores and status are the result's properties. Samples that pass are not results: SARIF
lists problems. As with ``--format json``, the log is written as it grows and closed at the
end, so a killed run leaves a file every JSON reader rejects rather than a silently short one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from guardcli.core.records import Result
from guardcli.core.tasks import FIELDS as TASK_FIELDS
from guardcli.io.outputs import Writer, json_line

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
# Sources that name no file: stdin, the command line, the Python API.
NOT_FILES = ("<stdin>", "--prompt", "python", "")
_SOURCE = re.compile(r"^(?P<path>.*?)(?::(?P<line>\d+)|#(?P<item>\d+))?$", re.DOTALL)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    text: str
    level: str  # SARIF's "error" | "warning"


RULES = (
    Rule("harmful-request", "HarmfulRequest", "The user's request is harmful.", "error"),
    Rule("harmful-response", "HarmfulResponse", "The AI's response is harmful.", "error"),
    Rule(
        "unjudged",
        "Unjudged",
        "The guard could not judge this sample: its output had no readable Answers block.",
        "warning",
    ),
)
_INDEX = {rule.id: n for n, rule in enumerate(RULES)}
HELP = (
    "guardcli judged this sample with a GuardReasoner model; the message gives the verdict "
    "and, in reason mode, the model's reasoning. Rerun it with `guardcli classify --prompt "
    "... --reasoning` to see the reasoning, or mark the alert as a false positive. Which "
    "verdicts fail the check is set by `guardcli scan --fail-on`."
)


def location(source: str, root: Path | None = None) -> dict[str, Any] | None:
    """A SARIF physicalLocation for a sample's ``source`` ("path:line", "path#item", "path"),
    its URI relative to ``root`` (the working folder) when the file is under it; None for a
    sample from stdin or the command line."""
    match = _SOURCE.match(source)
    assert match is not None  # the pattern matches every string
    path = match["path"]
    if path in NOT_FILES:
        return None
    root = Path.cwd() if root is None else root
    file = Path(path)
    if file.is_absolute():
        try:
            file = file.relative_to(root)
        except ValueError:
            uri = file.as_uri()
        else:
            uri = quote(file.as_posix())
    else:
        uri = quote(file.as_posix())
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
    if match["line"]:
        physical["region"] = {"startLine": int(match["line"])}
    return physical


def sarif_result(record: dict[str, Any], raw: str, *, gate: bool = True) -> dict[str, Any] | None:
    """The SARIF result for one output record, or None when the sample passed the gate.
    ``gate``: whether an unjudged sample fails it (all but ``--fail-on none``)."""
    flagged_tasks = [
        task for task in ("request", "response") if record["flagged"] and record[task] == "harmful"
    ]
    if flagged_tasks:
        rule = f"harmful-{flagged_tasks[0]}"
    elif record["status"] == "failed" and gate:
        rule = "unjudged"
    else:
        return None
    labels = ", ".join(f"{task} {record[task]}" for task in TASK_FIELDS)
    summary = (
        " and ".join(f"harmful {task}" for task in flagged_tasks).capitalize()
        if flagged_tasks
        else "No verdict: the model's output had no readable Answers block"
    )
    text = f"{summary} ({labels}; sample {record['id']})."
    if raw.strip():
        text += "\n\n" + raw.strip()
    result: dict[str, Any] = {
        "ruleId": rule,
        "ruleIndex": _INDEX[rule],
        "level": RULES[_INDEX[rule]].level,
        "message": {"text": text},
        "properties": {
            "id": record["id"],
            "source": record["source"],
            **{task: record[task] for task in TASK_FIELDS},
            "status": record["status"],
            "mode": record["mode"],
            "flagged_tasks": flagged_tasks,
            **{key: value for key, value in record.items() if key.endswith("_score")},
        },
    }
    where = location(record["source"])
    if where is not None:
        result["locations"] = [{"physicalLocation": where}]
    return result


class SarifWriter(Writer):
    """A SARIF 2.1.0 log with one run; its results written as they finish."""

    def __init__(self, stream: IO[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream
        self.count = 0
        head = json.dumps(_log_head(), indent=2)
        # Everything up to the results array, left open; close writes what ends it.
        self.stream.write(head[: head.rindex("[]")] + "[")
        self.stream.flush()

    def write(self, result: Result) -> None:
        gate = self.fail_on != "none"
        entry = sarif_result(self.record(result), result.verdict.raw, gate=gate)
        if entry is None:
            return
        self.stream.write(("," if self.count else "") + "\n        " + json_line(entry))
        self.stream.flush()
        self.count += 1

    def close(self, *, complete: bool = True) -> None:
        if not self.closed and complete:
            self.stream.write(("\n      " if self.count else "") + "]\n    }\n  ]\n}\n")
            self.stream.flush()
        super().close()


def _log_head() -> dict[str, Any]:
    from guardcli import __version__

    rules = [
        {
            "id": rule.id,
            "name": rule.name,
            "shortDescription": {"text": rule.text},
            "help": {"text": HELP},
            "defaultConfiguration": {"level": rule.level},
        }
        for rule in RULES
    ]
    driver = {"name": "guardcli", "version": __version__, "rules": rules}
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": []}],
    }
