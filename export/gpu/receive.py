"""Here, after the lease: what a GPU run sent back, put where the recipe's pipeline resumes it.
Each phase's state is marked as ended where it is, so that resuming it here merges and
converts it and never trains on (on this CPU, for hours) even if the data rebuilt here
should count a different schedule."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from export import ExportError
from export.gpu import ADAPTER, PHASES, RETURNED


def receive(root: Path, source: Path, *, force: bool = False) -> list[str]:
    from export.gpu.device import place_inputs, reuse_self_distill, workdir
    from export.train.sft_state import PROGRESS, STATE

    archive = source / RETURNED
    if not archive.is_file():
        raise ExportError(f"gpu receive: no {archive}", hint="pass the folder the call returned")
    work = workdir(root)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        unpacked = Path(tmp)
        for phase in PHASES:
            progress = unpacked / phase / PROGRESS
            if not progress.is_file():
                lines.append(f"{phase}: nothing came back")
                continue
            if not (source / f"{phase}.safetensors").is_file():
                raise ExportError(f"gpu receive: {phase} has progress but no {phase}.safetensors")
            dest = work / phase
            if dest.exists():
                if not force:
                    raise ExportError(
                        f"gpu receive: {dest} exists (an earlier run's phase)",
                        hint="pass --force to replace it, or move it aside",
                    )
                shutil.rmtree(dest)
            # a bundle converted from an earlier run of this phase would count as done
            shutil.rmtree(work / "bundles" / phase, ignore_errors=True)
            shutil.copytree(unpacked / phase, dest / STATE)
            shutil.copyfile(source / f"{phase}.safetensors", dest / STATE / "adapter" / ADAPTER)
            lines.append(f"{phase}: {_mark_ended(dest / STATE / PROGRESS)}")
        place_inputs(root)
        traces = unpacked / "self-distill" / "train.jsonl"
        if traces.is_file():  # what phase 2 trained on there
            (work / "self-distill").mkdir(parents=True, exist_ok=True)
            for name in ("train.jsonl", "train.jsonl.summary.json"):
                shutil.copyfile(unpacked / "self-distill" / name, work / "self-distill" / name)
            lines.append(f"self-distill: the traces phase 2 trained on -> {work / 'self-distill'}")
        else:
            reuse_self_distill(root)
    return lines


def _mark_ended(progress: Path) -> str:
    state = json.loads(progress.read_text(encoding="utf-8"))
    ended = state["log"].get("ended_at")
    if ended:
        how = f"ended by its time limit at step {ended['step']} of {ended['of']}"
    else:
        how = f"finished its schedule at step {state['step']}"
        state["log"]["ended_at"] = {"step": state["step"], "of": state["step"], "reason": "done"}
        progress.write_text(json.dumps(state), encoding="utf-8")
    return f"{how} -> {progress.parent}"
