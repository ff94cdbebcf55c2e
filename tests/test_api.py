"""The Python API (guardcli.load): the CLI's model, the CLI's verdicts, GuardError only, and a
cheap ``import guardcli``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import guardcli
from guardcli.api import GuardModel, samples_from
from guardcli.core.records import Label, Sample
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import GEN, PAIRS, invoke, jsonl_records, labels, pair_record, write_jsonl

FIXTURE = {"device": "cpu", "max_new_tokens": 256}  # the fixture model's 1024-token context


def test_import_guardcli_is_cheap():
    """The public names resolve without loading the runtime, the console or the CLI."""
    code = (
        "import sys, guardcli\n"
        "guardcli.load, guardcli.Verdict, guardcli.GuardError, guardcli.Sample\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    heavy = {"numpy", "onnxruntime_genai", "tokenizers", "rich", "typer", "torch"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_public_names():
    assert set(guardcli.__all__) <= set(dir(guardcli))
    for name in guardcli.__all__:
        assert getattr(guardcli, name) is not None
    assert issubclass(guardcli.ModelError, guardcli.GuardError)
    with pytest.raises(AttributeError):
        guardcli.no_such_name  # noqa: B018


def test_samples_from_what_callers_have():
    given = Sample(id="mine", prompt="p", response="r", source="db:7")
    samples = list(samples_from([given, ("q", "a"), ("q", None), "just a prompt"]))
    assert samples[0] is given
    assert [(s.id, s.prompt, s.response) for s in samples[1:]] == [
        ("2", "q", "a"),
        ("3", "q", None),
        ("4", "just a prompt", None),
    ]
    for bad in (42, ("a", "b", "c"), (1, None), ("p", 3)):
        with pytest.raises(guardcli.InputError, match="sample 1"):
            list(samples_from([bad]))


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"mode": "fsat"}, guardcli.UsageError, "unknown mode 'fsat'"),
        ({"band": (0.9, 0.1)}, guardcli.UsageError, "band 0.9,0.1"),
        ({"batch_size": 0}, guardcli.UsageError, "batch_size=0"),
        ({"threads": -1}, guardcli.UsageError, "threads=-1"),
        ({"model": "/no/such/bundle"}, guardcli.ModelError, "'/no/such/bundle'"),
        ({}, guardcli.ModelError, "no model found"),
    ],
)
def test_load_fails_with_guard_errors_only(kwargs, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(")):
        guardcli.load(**kwargs)


@pytest.mark.slow
def test_load_verifies_the_bundle_as_the_cli_does(fixture_bundle, tmp_path):
    bundle = shutil.copytree(fixture_bundle, tmp_path / "bundle")
    with (bundle / "tokenizer.json").open("a", encoding="utf-8") as tampered:
        tampered.write(" ")
    with pytest.raises(guardcli.ModelError, match="tokenizer.json: modified"):
        guardcli.load(bundle, **FIXTURE)
    assert guardcli.load(bundle, verify=False, **FIXTURE).path == bundle


@pytest.mark.slow
def test_load_resolves_as_the_cli_does(fixture_bundle, monkeypatch):
    monkeypatch.setenv("GUARDCLI_MODEL", str(fixture_bundle))
    model = guardcli.load(**FIXTURE)
    assert isinstance(model, GuardModel)
    assert (model.path, model.origin, model.device) == (fixture_bundle, "$GUARDCLI_MODEL", "cpu")
    assert model.manifest.name == "guardcli-fixture"
    assert model.options.mode == "reason" and model.options.batch_size == 8  # scan's default


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reason", "fast"])
def test_classify_equals_the_cli(fixture_bundle, mode):
    model = guardcli.load(fixture_bundle, mode=mode, **FIXTURE)
    for pair in (PAIRS["puppy-name"], PAIRS["poison-dog"], PAIRS["grandma-pin"]):
        verdict = model.classify(pair.prompt, pair.response)
        args = ["classify", "-p", pair.prompt, "-m", str(fixture_bundle), "--mode", mode, *GEN]
        args += [] if pair.response is None else ["-r", pair.response]
        [record] = jsonl_records(invoke(*args, "--reasoning", "-f", "jsonl").stdout)
        shown = (verdict.request.value, verdict.completion.value, verdict.response.value)
        assert shown == (record["request"], record["completion"], record["response"])
        assert verdict.raw == record["reasoning"]["text"]
        if mode == "reason":
            assert shown == labels(pair) and verdict.raw == pair.trace
        else:
            assert round(verdict.scores.request, 6) == record["request_score"]
            assert (verdict.request is Label.HARMFUL) == (record["request_score"] >= 0.5)


@pytest.mark.slow
def test_classify_many_streams_in_order_in_batches(fixture_bundle, tmp_path):
    model = guardcli.load(fixture_bundle, mode="fast", batch_size=2, **FIXTURE)
    read = []

    def samples():
        for pair in FIXTURE_PAIRS:
            read.append(pair.id)
            yield Sample(pair.id, pair.prompt, pair.response, source="test")

    results = model.classify_many(samples())
    first = next(results)
    assert first.sample.id == FIXTURE_PAIRS[0].id
    assert len(read) == 2  # one batch read, not the whole input: an endless source works
    rest = list(results)
    assert [r.sample.id for r in [first, *rest]] == [p.id for p in FIXTURE_PAIRS]

    data = write_jsonl(tmp_path / "pairs.jsonl", [pair_record(p) for p in FIXTURE_PAIRS])
    scan = invoke("scan", str(data), "--mode", "fast", "-m", str(fixture_bundle), *GEN)
    records = jsonl_records(scan.stdout)
    for result, record in zip([first, *rest], records, strict=True):
        verdict = result.verdict
        assert verdict.request.value == record["request"]
        assert verdict.response.value == record["response"]
        assert round(verdict.scores.request, 6) == record["request_score"]
    assert json.dumps([r["id"] for r in records]) == json.dumps([p.id for p in FIXTURE_PAIRS])


_MAPPED = """
import json, os, sys
import guardcli
model = guardcli.load(sys.argv[1], low_memory=sys.argv[2] == "1", device="cpu", max_new_tokens=256)
raw = [model.classify(p, r).raw for p, r in json.loads(sys.argv[3])]  # loads the runtime
data = os.path.realpath(os.path.join(sys.argv[1], "model.onnx.data"))
mapped = 0
for line in open("/proc/self/maps"):
    if line.rstrip().endswith(data):
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        mapped += end - start
print(json.dumps({"low_memory": model.low_memory, "mapped": mapped, "raw": raw}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_low_memory_keeps_float_weights_mapped_with_the_same_output(fixture_bundle):
    """--low-memory turns onnxruntime's weight prepacking off: the whole model.onnx.data stays
    mapped (shared, reclaimable file pages) instead of being copied into private memory, and
    greedy decoding writes the same text."""
    pairs = json.dumps([[p.prompt, p.response] for p in FIXTURE_PAIRS[:3]])
    size = (fixture_bundle / "model.onnx.data").stat().st_size

    def run(low: str) -> dict:
        args = [sys.executable, "-c", _MAPPED, str(fixture_bundle), low, pairs]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.splitlines()[-1])

    packed, mapped = run("0"), run("1")
    assert (packed["low_memory"], mapped["low_memory"]) == (False, True)
    assert mapped["mapped"] >= size  # every weight byte is a mapped page
    assert packed["mapped"] < size / 2  # the MatMul weights were copied and unmapped
    assert mapped["raw"] == packed["raw"] and all(packed["raw"])


def test_low_memory_leaves_quantized_weights_packed(fixture_bundle, tmp_path):
    """int4/int8 MatMulNBits decoded ~30x slower unpacked (docs/bench, round 2): the option is
    ignored there, and GuardModel.low_memory says so."""
    bundle = shutil.copytree(fixture_bundle, tmp_path / "bundle")
    manifest = json.loads((bundle / "guardcli.json").read_text())
    manifest["precision"] = "int4"
    (bundle / "guardcli.json").write_text(json.dumps(manifest))
    assert guardcli.load(bundle, low_memory=True, **FIXTURE).low_memory is False
    assert guardcli.load(fixture_bundle, low_memory=True, **FIXTURE).low_memory is True
