"""How to read inputs: what the user chose, checked once when it is made."""

from __future__ import annotations

from dataclasses import dataclass

from guardcli.errors import UsageError, one_of

SPLITS = ("none", "lines", "paragraphs")  # text files and text stdin: one sample per ...
STDIN_FORMATS = ("auto", "text", "jsonl", "json", "csv")


@dataclass(frozen=True)
class InputOptions:
    include: tuple[str, ...] = ()  # globs on the path relative to a scanned folder, or the name
    exclude: tuple[str, ...] = ()
    split: str = "none"  # one of SPLITS
    prompt_field: str = "prompt"
    response_field: str = "response"
    id_field: str = "id"
    stdin_format: str = "auto"  # one of STDIN_FORMATS

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise UsageError(f"--split {self.split!r}", hint="use " + one_of(SPLITS))
        if self.stdin_format not in STDIN_FORMATS:
            raise UsageError(
                f"--stdin-format {self.stdin_format!r}", hint="use " + one_of(STDIN_FORMATS)
            )
