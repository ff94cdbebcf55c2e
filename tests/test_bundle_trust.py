"""Bundle trust (issue 15, item 4): the manifest is covered by a root digest a user can pin,
the hash cache cannot be fooled by an mtime reset, and nothing in a bundle may point outside it.

Small fake bundle directories (tests/test_models.py's make_bundle) for the contract; the
fixture bundle for "existing bundles keep working".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from guardcli.bundles import hashcache
from guardcli.bundles.manifest import (
    MANIFEST,
    Problem,
    bundle_root,
    check_root,
    read_manifest,
    verify,
    write_manifest,
)
from guardcli.bundles.resolve import ENV_EXPECT, check_bundle
from guardcli.errors import ExitCode, ModelError, UsageError
from tests.cli_support import invoke
from tests.test_models import FILES, make_bundle


def edit_manifest(bundle: Path, **changes) -> None:
    path = bundle / MANIFEST
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))


def flip_keeping_mtime(path: Path, at: int = 100) -> None:
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))  # same size...
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...and the old mtime
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


# ---------------------------------------------------------------- the root digest


def test_editing_the_manifest_changes_the_root_and_a_pin_refuses_it(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    root = bundle_root(bundle)
    assert check_root(bundle, root.upper()) == root  # a pin may be pasted in either case

    for change in ({"eos_token_ids": [1]}, {"name": "trusted-model"}, {"extra": True}):
        shutil.copy(bundle / MANIFEST, tmp_path / "saved.json")
        edit_manifest(bundle, **change)
        assert verify(bundle) == []  # the files still match the manifest's own hash list...
        assert bundle_root(bundle) != root  # ...but the root moves, so a pin catches it
        with pytest.raises(ModelError) as caught:
            check_root(bundle, root)
        assert "\n" not in str(caught.value) and f"expected {root}" in str(caught.value)
        shutil.copy(tmp_path / "saved.json", bundle / MANIFEST)

    (bundle / "model.onnx").write_bytes(b"not really a graph!")  # a file: its hash list entry
    data = json.loads((bundle / MANIFEST).read_text())  # must change to pass verify, which
    data["files"]["model.onnx"] = hashlib.sha256(b"not really a graph!").hexdigest()
    (bundle / MANIFEST).write_text(json.dumps(data))  # moves the root too
    assert verify(bundle) == [] and bundle_root(bundle) != root


def test_the_root_ignores_formatting_only(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    root = bundle_root(bundle)
    data = json.loads((bundle / MANIFEST).read_text())
    (bundle / MANIFEST).write_text(json.dumps(dict(reversed(data.items())), indent=7))
    assert bundle_root(bundle) == root


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_root_is_reproducible_with_jq_and_sha256sum(tmp_path):
    """docs/security.md's recipe: the definition, not this implementation, is the contract."""
    bundle = make_bundle(tmp_path / "b")
    manifest = bundle / MANIFEST
    canonical = subprocess.run(
        ["jq", "-cS", "del(.files)", str(manifest)], capture_output=True, check=True
    ).stdout
    names = sorted(read_manifest(bundle).files)
    listing = subprocess.run(
        ["sha256sum", "--", *names], cwd=bundle, capture_output=True, check=True
    ).stdout
    assert hashlib.sha256(canonical + listing).hexdigest() == bundle_root(bundle)


def test_a_manifest_from_before_the_root_still_has_one(tmp_path):
    """Bundles written before the root digest existed (no calibration, no format key) load,
    verify and get a root: it is computed from what is stored, never stored itself."""
    bundle = make_bundle(tmp_path / "b")
    data = json.loads((bundle / MANIFEST).read_text())
    for key in ("calibration", "format", "validation", "built_with"):
        data.pop(key)
    (bundle / MANIFEST).write_text(json.dumps(data))
    root = bundle_root(bundle)
    assert len(root) == 64 and check_bundle(bundle).name == "b"
    assert check_root(bundle, root) == root


def test_the_fixture_bundle_verifies_and_its_root_pins_it(fixture_bundle, monkeypatch):
    root = bundle_root(fixture_bundle)
    assert verify(fixture_bundle, full=True) == []
    monkeypatch.setenv(ENV_EXPECT, root)
    assert check_bundle(fixture_bundle).name == read_manifest(fixture_bundle).name


def test_a_pinned_root_refuses_any_other_bundle_at_load(tmp_path, monkeypatch):
    bundle = make_bundle(tmp_path / "b")
    other = make_bundle(tmp_path / "other")
    monkeypatch.setenv(ENV_EXPECT, bundle_root(bundle))
    assert check_bundle(bundle).name == "b"
    for verify_hashes in (True, False):  # the pin reads only the manifest: --no-verify keeps it
        with pytest.raises(ModelError) as caught:
            check_bundle(other, verify_hashes=verify_hashes)
        assert "root sha256" in str(caught.value) and caught.value.exit_code == ExitCode.MODEL
    monkeypatch.setenv(ENV_EXPECT, "abc123")
    with pytest.raises(UsageError) as caught:
        check_bundle(bundle)
    assert "64 hex digits" in str(caught.value)


def test_models_info_prints_the_root_and_verify_expect_checks_it(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    info = invoke("models", "info", str(bundle))
    assert info.exit_code == 0, info.stderr
    root = json.loads(info.stdout)["root_sha256"]
    assert root == bundle_root(bundle)

    plain = invoke("models", "verify", str(bundle))
    assert plain.exit_code == 0
    assert plain.stdout == f"{bundle}: OK ({len(FILES)} files, root sha256 {root})\n"
    pinned = invoke("models", "verify", str(bundle), "--expect", root)
    assert pinned.exit_code == 0 and pinned.stdout.endswith(f"{root}, as pinned)\n")

    edit_manifest(bundle, eos_token_ids=[7])
    assert invoke("models", "verify", str(bundle)).exit_code == 0  # unpinned: files intact
    refused = invoke("models", "verify", str(bundle), "--expect", root)
    assert refused.exit_code == 3 and refused.stdout == ""
    assert f"expected {root}" in refused.stderr and refused.stderr.count("\n") == 1
    bad = invoke("models", "verify", str(bundle), "--expect", "nope")
    assert bad.exit_code == 2 and "64 hex digits" in bad.stderr


# ---------------------------------------------------------------- the hash cache


def test_a_byte_flipped_with_its_mtime_restored_is_caught_by_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(hashcache, "RACY_NS", 0)  # remember even a file written just now
    bundle = make_bundle(tmp_path / "b")
    assert verify(bundle) == []
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "guardcli" / "hashes.json"
    assert len(json.loads(cache.read_text())) == len(FILES)  # every file hashed and remembered
    time.sleep(0.05)  # past the filesystem's timestamp tick, as any real attacker is

    path = bundle / "model.onnx.data"
    flip_keeping_mtime(path)
    assert verify(bundle) == [Problem("model.onnx.data", "modified")]  # ctime moved
    assert verify(bundle, full=True) == [Problem("model.onnx.data", "modified")]


def test_a_file_changed_too_recently_to_tell_is_not_remembered(tmp_path):
    """ctime has a coarse tick: a hash taken in the same tick as a write is not cached (the
    "racy git" rule), so a second edit within that tick cannot hide behind it."""
    bundle = make_bundle(tmp_path / "b")
    assert verify(bundle) == []
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "guardcli" / "hashes.json"
    assert not cache.exists()
    flip_keeping_mtime(bundle / "model.onnx.data")
    assert verify(bundle) == [Problem("model.onnx.data", "modified")]


# ---------------------------------------------------------------- nothing leaves the bundle


def test_a_symlink_in_a_bundle_is_refused_even_with_the_right_hash(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    outside = tmp_path / "elsewhere.json"
    shutil.move(bundle / "tokenizer" / "tokenizer.json", outside)
    (bundle / "tokenizer" / "tokenizer.json").symlink_to(outside)  # same bytes, via a link
    (bundle / "passwd").symlink_to("/etc/passwd")
    problems = verify(bundle)
    assert problems == [
        Problem("passwd", "symlink to '/etc/passwd' (refused)"),
        Problem("tokenizer/tokenizer.json", f"symlink to {str(outside)!r} (refused)"),
    ]
    assert verify(bundle, full=True) == problems
    with pytest.raises(ModelError) as caught:
        check_bundle(bundle)
    assert "passwd: symlink to '/etc/passwd' (refused)" in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(ModelError):  # and no manifest is ever written over one
        write_manifest(bundle, read_manifest(bundle))


def test_a_symlinked_folder_or_manifest_is_refused(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    shutil.move(bundle / "tokenizer", tmp_path / "tok")
    (bundle / "tokenizer").symlink_to(tmp_path / "tok", target_is_directory=True)
    assert [p.path for p in verify(bundle)] == ["tokenizer"]

    linked = make_bundle(tmp_path / "c")
    shutil.move(linked / MANIFEST, tmp_path / "m.json")
    (linked / MANIFEST).symlink_to(tmp_path / "m.json")
    with pytest.raises(ModelError) as caught:
        check_bundle(linked)
    assert "manifest is a symlink" in str(caught.value)


def test_a_fifo_in_a_bundle_is_refused_not_read(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    os.mkfifo(bundle / "pipe")
    assert verify(bundle) == [Problem("pipe", "not a regular file (refused)")]


@pytest.mark.parametrize("name", ["../outside.bin", "/etc/hostname", "a/../../outside.bin"])
def test_a_manifest_path_leaving_the_bundle_is_refused(tmp_path, name):
    bundle = make_bundle(tmp_path / "b")
    (tmp_path / "outside.bin").write_bytes(b"x")
    data = json.loads((bundle / MANIFEST).read_text())
    data["files"][name] = hashlib.sha256(b"x").hexdigest()
    (bundle / MANIFEST).write_text(json.dumps(data))
    assert verify(bundle) == [Problem(name, "path leaves the bundle (refused)")]
