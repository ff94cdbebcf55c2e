"""Training rows: GuardReasonerTrain-format JSON or JSONL (instruction, input, output), checked
as they are read so a bad file fails before the model loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export import TrainError
from guardcli.core.prompt import INSTRUCTION, NO_RESPONSE, split_input

PROMPT_ONLY_END = f"AI assistant:\n{NO_RESPONSE}\n\n"  # how a prompt-only input ends


@dataclass(frozen=True)
class TrainRow:
    """One GuardReasonerTrain row: the full model input text and the reasoning trace."""

    text: str  # instruction + "\n" + input == guardcli.core.prompt.build_input(prompt, response)
    output: str
    where: str  # file:line, for messages

    @property
    def has_response(self) -> bool:
        return not self.text.endswith(PROMPT_ONLY_END)


def read_train_rows(paths: Sequence[Path]) -> list[TrainRow]:
    """Rows of GuardReasonerTrain-format files: JSONL, or a JSON list, of instruction/input/output.

    The instruction must be guardcli's, byte for byte, and the input in the GuardReasoner
    format: anything else would train on inputs the runtime never builds.
    """
    rows: list[TrainRow] = []
    for path in paths:
        for where, item in _json_items(Path(path)):
            rows.append(_train_row(item, where))
    if not rows:
        raise TrainError("no training rows in " + ", ".join(str(p) for p in paths))
    return rows


def _train_row(item: Any, where: str) -> TrainRow:
    if not isinstance(item, dict) or not all(
        isinstance(item.get(k), str) for k in ("instruction", "input", "output")
    ):
        raise TrainError(f"{where}: expected an object with string instruction, input, output")
    if item["instruction"] != INSTRUCTION:
        raise TrainError(
            f"{where}: the instruction differs from guardcli.core.prompt.INSTRUCTION",
            hint="regenerate the data with export.distill (the runtime only builds that prompt)",
        )
    text = item["instruction"] + "\n" + item["input"]
    if split_input(text) is None:
        raise TrainError(
            f"{where}: input is not 'Human user:\\n...\\n\\nAI assistant:\\n...\\n\\n'",
            hint="build it with guardcli.core.prompt.format_pair",
        )
    return TrainRow(text=text, output=item["output"], where=where)


def _json_items(path: Path) -> Iterator[tuple[str, Any]]:
    """(file:line, object) for a JSONL file or a JSON list."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrainError(f"{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TrainError(f"{path}: not UTF-8 text") from exc
    if raw.lstrip().startswith("["):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise TrainError(f"{path}: invalid JSON ({exc})") from exc
        for index, item in enumerate(data):
            yield f"{path}[{index}]", item
        return
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line)
        except ValueError as exc:
            raise TrainError(f"{path}:{number}: invalid JSON ({exc.args[0]})") from exc
