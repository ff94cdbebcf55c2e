"""Which bundle runs, and refusing bundles that would give wrong verdicts: model resolution,
the manifest contract and hash verification, on small fake bundle directories (no model).

tests/conftest.py points XDG_CONFIG_HOME and XDG_CACHE_HOME at a fresh temporary home for
every test and clears GUARDCLI_MODEL, so the "embedded default" and the hash cache here are
the test's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from guardcli.bundles.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    Manifest,
    Problem,
    read_manifest,
    verify,
    write_manifest,
)
from guardcli.bundles.paths import models_dir
from guardcli.bundles.resolve import (
    ENV_MODEL,
    Resolved,
    check_bundle,
    installed_models,
    open_guard,
    resolve_model,
    set_default,
)
from guardcli.core.prompt import TEMPLATE_ID
from guardcli.errors import ExitCode, ModelError

FILES = {
    "model.onnx": b"not really a graph",
    "model.onnx.data": b"\x00\x01\x02" * 1000,
    "genai_config.json": b"{}",
    "tokenizer/tokenizer.json": b'{"version": "1.0"}',
}


def make_bundle(path: Path, *, template: str = TEMPLATE_ID) -> Path:
    """A directory that passes for a bundle as far as the manifest and hashes go."""
    for name, data in FILES.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    manifest = Manifest(
        name=path.name,
        source={"kind": "path", "id": str(path)},
        architecture={"layers": 2},
        precision="fp32",
        target="cpu",
        template=template,
        bos_token_id=0,
        eos_token_ids=[1, 2],
        pad_token_id=1,
        add_bos=True,
        context_length=1024,
    )
    write_manifest(path, manifest)
    return path


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """Run from an empty directory: a bare name must never match a folder in the cwd."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)


def assert_one_line(exc: ModelError, *fragments: str) -> None:
    text = str(exc)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, text
    assert exc.exit_code == ExitCode.MODEL


# ---------------------------------------------------------------- resolution


def test_no_model_anywhere_is_one_line_that_says_how_to_get_one():
    with pytest.raises(ModelError) as caught:
        resolve_model()
    assert_one_line(caught.value, "no model found", "python -m export.convert", ENV_MODEL)


def test_resolution_order(tmp_path, monkeypatch):
    embedded = make_bundle(models_dir() / "nano")
    configured = make_bundle(tmp_path / "configured")
    from_env = make_bundle(tmp_path / "from-env")
    explicit = make_bundle(tmp_path / "explicit")

    assert resolve_model() == Resolved(embedded, "embedded default")
    set_default(str(configured))
    assert resolve_model() == Resolved(configured, "config")
    monkeypatch.setenv(ENV_MODEL, str(from_env))
    assert resolve_model() == Resolved(from_env, f"${ENV_MODEL}")
    assert resolve_model(str(explicit)) == Resolved(explicit, "--model")

    # and back down, one level at a time
    monkeypatch.delenv(ENV_MODEL)
    assert resolve_model() == Resolved(configured, "config")
    set_default(None)
    assert resolve_model() == Resolved(embedded, "embedded default")


def test_an_embedded_folder_without_a_manifest_is_no_model():
    (models_dir() / "nano").mkdir(parents=True)
    (models_dir() / "nano" / "model.onnx").write_bytes(b"half copied")
    with pytest.raises(ModelError) as caught:
        resolve_model()
    assert_one_line(caught.value, "no model found")


def test_installed_names(monkeypatch):
    int8 = make_bundle(models_dir() / "gr1b-int8")
    fp32 = make_bundle(models_dir() / "gr1b-fp32")
    (models_dir() / "half-copied").mkdir()
    (models_dir() / "notes.txt").write_text("not a bundle")
    assert installed_models() == [fp32, int8]

    assert resolve_model("gr1b-int8") == Resolved(int8, "--model")
    monkeypatch.setenv(ENV_MODEL, "gr1b-fp32")
    assert resolve_model() == Resolved(fp32, f"${ENV_MODEL}")
    monkeypatch.delenv(ENV_MODEL)
    set_default("gr1b-int8")
    assert resolve_model() == Resolved(int8, "config")


def test_installed_models_without_a_cache_folder():
    assert not models_dir().exists()
    assert installed_models() == []


@pytest.mark.parametrize("origin", ["--model", "env", "config"])
def test_a_named_model_that_is_missing_fails_where_it_was_named(origin, monkeypatch):
    make_bundle(models_dir() / "nano")  # a fallback exists, and must not be used silently
    if origin == "env":
        monkeypatch.setenv(ENV_MODEL, "gr1b-typo")
    elif origin == "config":
        set_default("gr1b-typo")
    with pytest.raises(ModelError) as caught:
        resolve_model("gr1b-typo" if origin == "--model" else None)
    shown = {"--model": "--model", "env": f"${ENV_MODEL}", "config": "config"}[origin]
    assert_one_line(
        caught.value, "'gr1b-typo'", f"(from {shown})", "guardcli models list", "export.convert"
    )


def test_an_unreadable_config_is_reported_unless_the_model_is_explicit(tmp_path):
    explicit = make_bundle(tmp_path / "explicit")
    set_default("whatever")
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "guardcli" / "config.json"
    config.write_text("{not json")
    with pytest.raises(ModelError) as caught:
        resolve_model()
    assert_one_line(caught.value, str(config), "unreadable config")
    assert resolve_model(str(explicit)).path == explicit


# ---------------------------------------------------------------- the manifest contract


def test_manifest_round_trips_and_hashes_every_file(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    manifest = read_manifest(bundle)
    assert set(manifest.files) == set(FILES)  # nested files too, never the manifest itself
    assert manifest.format == FORMAT_VERSION
    assert (manifest.eos_token_ids, manifest.template) == ([1, 2], TEMPLATE_ID)
    assert check_bundle(bundle) == manifest


def test_a_bundle_for_another_template_is_refused(tmp_path):
    bundle = make_bundle(tmp_path / "b", template="guardreasoner-v2")
    for verify_hashes in (True, False):  # --no-verify skips hashes, never the template check
        with pytest.raises(ModelError) as caught:
            check_bundle(bundle, verify_hashes=verify_hashes)
        assert_one_line(caught.value, "'guardreasoner-v2'", repr(TEMPLATE_ID), "rebuild")


def _rewrite_manifest(bundle: Path, **changes) -> None:  # noqa: ANN003
    data = json.loads((bundle / MANIFEST).read_text())
    data.update(changes)
    (bundle / MANIFEST).write_text(json.dumps(data))


def test_a_newer_manifest_format_is_refused(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    _rewrite_manifest(bundle, format=FORMAT_VERSION + 1, new_field={"from": "the future"})
    with pytest.raises(ModelError) as caught:
        check_bundle(bundle, verify_hashes=False)
    assert_one_line(caught.value, f"format {FORMAT_VERSION + 1} is newer", "upgrade guardcli")


@pytest.mark.parametrize(
    "changes,fragment",
    [
        ({"format": "2"}, "not a version number"),
        ({"files": ["model.onnx"]}, "'files' is not a mapping"),
        ({"files": {"model.onnx": None}}, "'files' is not a mapping"),
    ],
)
def test_a_malformed_manifest_is_one_line_not_a_traceback(tmp_path, changes, fragment):
    bundle = make_bundle(tmp_path / "b")
    _rewrite_manifest(bundle, **changes)
    with pytest.raises(ModelError) as caught:
        check_bundle(bundle)
    assert_one_line(caught.value, fragment)


def test_a_manifest_missing_a_field_or_absent_is_refused(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    data = json.loads((bundle / MANIFEST).read_text())
    del data["template"], data["eos_token_ids"]
    (bundle / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ModelError) as caught:
        check_bundle(bundle)
    assert_one_line(caught.value, "lacks eos_token_ids, template")
    (bundle / MANIFEST).unlink()
    with pytest.raises(ModelError) as caught:
        check_bundle(bundle)
    assert_one_line(caught.value, "not a guardcli bundle", "export.convert")


# ---------------------------------------------------------------- hash verification


def test_each_kind_of_damage_is_named(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    (bundle / "model.onnx.data").unlink()
    (bundle / "tokenizer" / "tokenizer.json").write_bytes(b'{"version": "2.0", "x": 1}')
    (bundle / "extra.onnx").write_bytes(b"smuggled in")
    (bundle / ".DS_Store").write_bytes(b"finder noise")  # hidden files are not bundle files
    expected = [
        Problem("model.onnx.data", "missing"),
        Problem("tokenizer/tokenizer.json", "modified"),
        Problem("extra.onnx", "unexpected"),
    ]
    assert verify(bundle) == expected
    assert verify(bundle, full=True) == expected
    with pytest.raises(ModelError) as caught:
        check_bundle(bundle)
    assert_one_line(
        caught.value,
        "does not match its manifest",
        "model.onnx.data: missing",
        "tokenizer/tokenizer.json: modified",
        "extra.onnx: unexpected",
        "--no-verify",
    )
    assert check_bundle(bundle, verify_hashes=False).name == "b"


def test_more_than_three_problems_are_counted_not_listed(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    for name in FILES:
        (bundle / name).unlink()
    with pytest.raises(ModelError) as caught:
        check_bundle(bundle)
    assert_one_line(caught.value, "(+1 more)")
    assert str(caught.value).count(": missing") == 3


def test_a_corrupt_hash_cache_is_ignored(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "guardcli" / "hashes.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("[1, 2")
    assert verify(bundle) == []
    (bundle / "model.onnx").write_bytes(b"another graph!!!!!")
    assert verify(bundle) == [Problem("model.onnx", "modified")]


def test_open_guard_refuses_before_loading_and_no_verify_reaches_the_loader(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    (bundle / "model.onnx").write_bytes(b"swapped graph")
    with pytest.raises(ModelError) as caught:
        open_guard(Resolved(bundle, "--model"), device="cpu")
    assert_one_line(caught.value, "model.onnx: modified")
    # --no-verify gets past the hashes; the fake graph then fails to load, still one line
    with pytest.raises(ModelError) as caught:
        open_guard(Resolved(bundle, "--model"), device="cpu", verify_hashes=False)
    assert_one_line(caught.value, "cannot load the ONNX model")
