"""Here, after the lease: the states a GPU run sent back, put where the recipe's pipeline
resumes them. A state at its last step (or ended by its time limit) resumes to a finished run:
the pipeline merges and converts it without training on (fast_sft's resume)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from export import ExportError
from export.gpu import PHASES, RECIPE


def receive(root: Path, source: Path, *, force: bool = False) -> list[str]:
    from export.gpu.device import place_inputs
    from export.recipe import load_recipe
    from export.train.fast_sft import STATE

    work = root / load_recipe(root / RECIPE).workdir
    place_inputs(root)  # what phase 2 trained on, to rebuild its data here
    lines = []
    for phase in PHASES:
        progress = source / phase / "progress.json"
        if not progress.is_file():
            lines.append(f"{phase}: nothing came back (no {progress})")
            continue
        if not (source / phase / "adapter" / "adapter_model.safetensors").is_file():
            raise ExportError(f"gpu receive: {source / phase} has progress but no adapter")
        dest = work / phase
        if dest.exists():
            if not force:
                raise ExportError(
                    f"gpu receive: {dest} exists (an earlier run's phase)",
                    hint="pass --force to replace it, or move it aside",
                )
            shutil.rmtree(dest)
        shutil.copytree(source / phase, dest / STATE)
        step = json.loads(progress.read_text(encoding="utf-8"))
        ended = step["log"].get("ended_at")
        how = f", ended by its time limit (of {ended['of']})" if ended else ""
        lines.append(f"{phase}: state of step {step['step']}{how} -> {dest / STATE}")
    return lines
