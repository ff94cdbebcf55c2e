"""``guardcli models`` and model resolution as the commands see it."""

from __future__ import annotations

import json

import pytest

from tests.cli_support import (
    GEN,
    PAIRS,
    install,
    invoke,
    jsonl_records,
    labels,
    no_model_env,
    pair_record,
    record_labels,
    write_jsonl,
)


@pytest.mark.slow
def test_models_commands(fixture_bundle):
    installed = install(fixture_bundle, "fixture")
    listed = invoke("models", "list")
    assert listed.exit_code == 0
    assert listed.stdout == f"fixture\tfp32\tcpu\t{installed}\n"
    assert "no default model" in listed.stderr

    assert invoke("models", "path").exit_code == 3  # installed is not the same as default
    set_default = invoke("models", "default", "fixture")
    assert set_default.exit_code == 0 and set_default.stdout == ""
    assert "config.json" in set_default.stderr

    assert f"default model: {installed} [config]" in invoke("models", "list").stderr
    path = invoke("models", "path")
    assert (path.exit_code, path.stdout) == (0, f"{installed}\n")

    info = invoke("models", "info")
    assert info.exit_code == 0
    manifest = json.loads(info.stdout)
    assert manifest["name"] == "guardcli-fixture"
    assert manifest["precision"] == "fp32"
    assert manifest["resolved_from"] == "config"
    assert manifest["path"] == str(installed)
    files = sorted(p for p in installed.iterdir() if p.name != "guardcli.json")
    assert manifest["files"] == len(files)

    root = manifest["root_sha256"]
    verify = invoke("models", "verify", "fixture", "--full", "--expect", root)
    ok = f"{installed}: OK ({len(files)} files, root sha256 {root}, as pinned)\n"
    assert (verify.exit_code, verify.stdout) == (0, ok)

    assert invoke("models", "default").exit_code == 2  # neither a model nor --unset
    assert invoke("models", "default", "--unset").exit_code == 0
    unset = invoke("models", "path")
    assert unset.exit_code == 3 and unset.stdout == ""


@pytest.mark.slow
def test_tampered_bundle_is_refused(fixture_bundle, tmp_path):
    tampered = install(fixture_bundle, "tampered")
    with open(tampered / "tokenizer_config.json", "ab") as handle:
        handle.write(b" ")
    verify = invoke("models", "verify", "tampered")
    assert verify.exit_code == 3
    assert verify.stdout == ""
    assert f"{tampered / 'tokenizer_config.json'}: modified" in verify.stderr
    assert "1 of" in verify.stderr and "fail verification" in verify.stderr

    pair = PAIRS["boiled-egg"]
    data = write_jsonl(tmp_path / "egg.jsonl", [pair_record(pair)])
    refused = invoke("scan", str(data), "--model", "tampered", *GEN)
    assert refused.exit_code == 3 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert "tokenizer_config.json: modified" in refused.stderr and "--no-verify" in refused.stderr

    forced = invoke("scan", str(data), "--model", "tampered", "--no-verify", *GEN)
    assert forced.exit_code == 0, forced.stderr
    [record] = jsonl_records(forced.stdout)
    assert record_labels(record) == labels(pair)


def test_no_model_at_all(tmp_path):
    env = no_model_env()
    result = invoke("classify", "--prompt", "hello", env=env)
    assert result.exit_code == 3
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("guardcli: error: no model found")
    assert "python -m export.convert" in line and "--model DIR" in line
    listed = invoke("models", "list", env=env)
    assert listed.exit_code == 0 and listed.stdout == ""
    assert "no models installed" in listed.stderr


def test_where_nano_cannot_be_built_no_model_points_to_the_kits_bundle(monkeypatch):
    """An air-gapped box installed from an offline kit has no SmolLM2 GGUF: 'models build
    nano' would fail there too, so the hint names the kit's own bundle first."""
    from guardcli.bundles import resolve

    monkeypatch.setattr(resolve, "find_base_gguf", lambda: None)
    result = invoke("scan", "-", input="hello", env=no_model_env())
    assert result.exit_code == 3
    [line] = result.stderr.splitlines()
    assert line.startswith("guardcli: error: no model found - from an offline kit, use its own")
    assert "'guardcli models default KIT/nano' (the kit's install.sh does this)" in line
    named = invoke("classify", "-p", "x", "--model", "nano", env=no_model_env())
    assert named.exit_code == 3 and "KIT/nano" in named.stderr


@pytest.mark.slow
def test_model_resolution_order(fixture_bundle, tmp_path):
    alpha, beta = install(fixture_bundle, "alpha"), install(fixture_bundle, "beta")
    assert invoke("models", "default", "alpha").exit_code == 0

    def resolved(*args: str, env: dict | None = None) -> tuple[str, str]:
        info = json.loads(invoke("models", "info", *args, env=env).stdout)
        return info["path"], info["resolved_from"]

    assert resolved() == (str(alpha), "config")
    assert resolved(env={"GUARDCLI_MODEL": "beta"}) == (str(beta), "$GUARDCLI_MODEL")
    assert resolved("alpha", env={"GUARDCLI_MODEL": "beta"}) == (str(alpha), "--model")

    data = write_jsonl(tmp_path / "egg.jsonl", [pair_record(PAIRS["boiled-egg"])])
    scan = invoke("scan", str(data), "--model", str(alpha), *GEN, env={"GUARDCLI_MODEL": "beta"})
    assert scan.exit_code == 0
    assert f"from {alpha} [--model]" in scan.stderr
    scan = invoke("scan", str(data), *GEN, env={"GUARDCLI_MODEL": "beta"})
    assert f"from {beta} [$GUARDCLI_MODEL]" in scan.stderr
    missing = invoke("scan", str(data), *GEN, env={"GUARDCLI_MODEL": "gamma"})
    assert missing.exit_code == 3 and "'gamma'" in missing.stderr
