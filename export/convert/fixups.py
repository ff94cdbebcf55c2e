"""The bundle files the builder gets wrong for guardcli, fixed after it runs: genai_config.json
(every EOS id of config.json + generation_config.json, a pad id inside the vocabulary, no
baked-in thread counts) and the tokenizer, which must encode exactly like the source's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from export import ConvertError

THREAD_KEYS = ("intra_op_num_threads", "inter_op_num_threads")


def fix_genai_config(
    output: Path, config: dict[str, Any], gen_config: dict[str, Any]
) -> dict[str, Any]:
    """EOS ids from config.json + generation_config.json (+ the builder's), a sane pad id."""
    path = output / "genai_config.json"
    if not path.is_file():
        raise ConvertError(f"the model builder wrote no genai_config.json in {output}")
    genai = json.loads(path.read_text(encoding="utf-8"))
    model = genai["model"]
    vocab = int(model.get("vocab_size") or config.get("vocab_size") or 0)
    eos: list[int] = []
    for value in (
        config.get("eos_token_id"),
        gen_config.get("eos_token_id"),
        model.get("eos_token_id"),
    ):
        for token in as_list(value):
            if token not in eos and (not vocab or 0 <= token < vocab):
                eos.append(token)
    if not eos:
        raise ConvertError("no EOS token id in config.json, generation_config.json or the build")
    model["eos_token_id"] = eos if len(eos) > 1 else eos[0]
    pad = None
    for value in (
        config.get("pad_token_id"),
        gen_config.get("pad_token_id"),
        model.get("pad_token_id"),
    ):
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (not vocab or 0 <= value < vocab)
        ):
            pad = value
            break
    model["pad_token_id"] = eos[0] if pad is None else pad
    for section in _session_option_blocks(genai):
        for key in THREAD_KEYS:
            section.pop(key, None)  # guardcli sizes threads at load time for the machine it runs on
    path.write_text(json.dumps(genai, indent=4) + "\n", encoding="utf-8")
    return genai


def _session_option_blocks(genai: dict[str, Any]) -> list[dict[str, Any]]:
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "session_options" and isinstance(value, dict):
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(genai)
    return found


def settle_tokenizer(output: Path, checkpoint: Path, texts: list[str]) -> None:
    """The bundle must carry a tokenizer.json that encodes exactly like the checkpoint's.

    The builder re-saves the tokenizer through transformers; that file is kept when it
    tokenizes identically, else (or when it is missing) the checkpoint's file is copied in.
    """
    from tokenizers import Tokenizer

    ours, theirs = output / "tokenizer.json", checkpoint / "tokenizer.json"
    if not ours.is_file():
        if not theirs.is_file():
            raise ConvertError(
                "the bundle has no tokenizer.json and the checkpoint has none to copy",
                hint="pass --tokenizer DIR with a tokenizer.json",
            )
        shutil.copyfile(theirs, ours)
        print("tokenizer: copied tokenizer.json from the checkpoint", flush=True)
        return
    if not theirs.is_file():
        return
    probes = [*texts, "x", " hello world", "Ünïcödé 🌊 <|begin_of_text|> \n\n  tabs\t", "1234567"]
    a, b = Tokenizer.from_file(str(ours)), Tokenizer.from_file(str(theirs))
    for text in probes:
        for special in (False, True):
            if (
                a.encode(text, add_special_tokens=special).ids
                != b.encode(text, add_special_tokens=special).ids
            ):
                shutil.copyfile(theirs, ours)
                print(
                    "tokenizer: the builder's tokenizer.json encodes differently; "
                    "using the checkpoint's file verbatim",
                    flush=True,
                )
                return


def as_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if v is not None]
    return [int(value)]
