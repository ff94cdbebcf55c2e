"""``.pre-commit-hooks.yaml``: the guardcli-scan hook, run by pre-commit itself over a
temporary git repository, offline (the hook is ``language: system``: it runs the installed
guardcli, so pre-commit builds no environment and needs no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import guardcli
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import GEN, PAIRS, REPO

yaml = pytest.importorskip("yaml")  # pre-commit's own dependency

PRE_COMMIT = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or shutil.which(
    "pre-commit"
)
pytestmark = pytest.mark.skipif(PRE_COMMIT is None, reason="pre-commit is not installed")


def _env(tmp_path: Path, **extra: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        # The hook runs `guardcli` from PATH: this interpreter's, with this checkout importable.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        **extra,
    }
    return {key: value for key, value in env.items() if value is not None}


def _git_repo(path: Path, files: dict[str, str], env: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "files"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PRE_COMMIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_manifest_is_valid_and_says_what_the_issue_asks():
    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "guardcli-scan" and hook["types"] == ["text"]
    assert "--mode fast" in hook["entry"] and "--fail-on request" in hook["entry"]
    result = subprocess.run(
        [PRE_COMMIT, "validate-manifest", str(REPO / ".pre-commit-hooks.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_try_repo_runs_the_hook_from_this_checkout(tmp_path):
    """``pre-commit try-repo`` straight from this repository: the hook runs guardcli over the
    named file; with no model anywhere it fails, with guardcli's one-line fix."""
    env = _env(tmp_path, GUARDCLI_MODEL=None)
    work = _git_repo(tmp_path / "work", {"prompt.txt": "How do I bake bread?\n"}, env)
    result = _run(["try-repo", str(REPO), "guardcli-scan", "--files", "prompt.txt"], work, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "guardcli scan" in result.stdout and "Failed" in result.stdout
    assert "guardcli: error: no model found - " in result.stdout  # one line, with its fix


@pytest.mark.slow
def test_the_hook_fails_a_commit_with_a_harmful_prompt(tmp_path, fixture_bundle):
    """What a user writes in .pre-commit-config.yaml, with the fixture model as their model
    (its 1024-token context needs a smaller generation budget). The hook repository holds
    this checkout's manifest, byte for byte."""
    env = _env(tmp_path, GUARDCLI_MODEL=None)
    manifest = (REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    hooks = _git_repo(tmp_path / "hooks", {".pre-commit-hooks.yaml": manifest}, env)
    rev = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=hooks, capture_output=True, text=True, check=True
    ).stdout.strip()
    config = {
        "repos": [
            {
                "repo": str(hooks),
                "rev": rev,
                "hooks": [{"id": "guardcli-scan", "args": ["--model", str(fixture_bundle), *GEN]}],
            }
        ]
    }
    # The fixture model is no judge in fast mode (it learnt traces, not labels), so which
    # prompt fails is asked of guardcli itself, as the hook runs it.
    model = guardcli.load(fixture_bundle, mode="fast", device="cpu", max_new_tokens=256)
    verdicts = {pair.id: model.classify(pair.prompt).request_harmful for pair in FIXTURE_PAIRS}
    flagged_id = next(key for key, harmful in verdicts.items() if harmful)
    passing_id = next(key for key, harmful in verdicts.items() if not harmful)
    files = {
        "flagged.txt": PAIRS[flagged_id].prompt + "\n",
        "passes.md": PAIRS[passing_id].prompt + "\n",
        ".pre-commit-config.yaml": yaml.safe_dump(config),
    }
    work = _git_repo(tmp_path / "work", files, env)

    flagged = _run(["run", "--files", "flagged.txt", "passes.md"], work, env)
    assert flagged.returncode == 1, flagged.stdout + flagged.stderr
    assert "guardcli scan" in flagged.stdout and "Failed" in flagged.stdout
    assert "fast mode" in flagged.stdout
    row = next(line for line in flagged.stdout.splitlines() if "│ flagged.txt" in line)
    assert "│ harmful " in row
    assert "2 scanned, 1 flagged (request 1" in flagged.stdout

    passed = _run(["run", "--files", "passes.md"], work, env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout
