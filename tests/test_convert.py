"""export.convert end to end on a tiny random Llama (no ../shared, no network).

The slow tests build real bundles with onnxruntime-genai's model builder (a few seconds each)
and check them the way guardcli will use them: manifest + verify, genai_config EOS ids, BOS
handling, fp32 token-exact parity with transformers, loading in onnxruntime-genai.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export.convert.command import build_parser, main
from export.convert.encoding import decide_add_bos
from export.convert.fixups import fix_genai_config
from export.convert.sources import Source
from export.convert.validate import EXAMPLES, builtin_texts, compare, file_texts
from guardcli.bundles.manifest import read_manifest, sha256_file, verify
from guardcli.core.prompt import TEMPLATE_ID, build_input, format_pair
from guardcli.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "export.convert", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
        timeout=600,
    )


def _convert(model: Path, out: Path, *extra: str) -> int:
    return main(["--model", str(model), "--output", str(out), *extra])


# ---------------------------------------------------------------- fixtures (tiny checkpoints)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from testkit.tiny import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "ckpt")


@pytest.fixture(scope="module")
def fp32_bundle(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "tiny-fp32"
    assert _convert(tiny, out, "--validate", "4", "--max-new-tokens", "48") == 0
    return out


def _tiny_ids(checkpoint: Path) -> tuple[int, int, int]:
    from tokenizers import Tokenizer

    from testkit.tiny import BOS, EOS, EOT

    tok = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    return tok.token_to_id(BOS), tok.token_to_id(EOS), tok.token_to_id(EOT)


# ---------------------------------------------------------------- fast: CLI and helpers


def test_help_explains_every_option():
    parser = build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 20, action.option_strings
    result = _cli("--help")
    assert result.returncode == 0
    for option in ("--model", "--precision", "--int4-block-size", "--no-validate", "--force"):
        assert option in result.stdout


def test_unreachable_hub_is_one_clear_line(tmp_path):
    out = tmp_path / "never"
    result = _cli(
        "--model",
        "yueliu1999/GuardReasoner-1B",
        "--output",
        str(out),
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert result.returncode == 3  # no model to convert: ExitCode.MODEL
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot download yueliu1999/GuardReasoner-1B" in lines[0]
    assert "not reachable" in lines[0] and "local checkpoint" in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def _fake_checkpoint(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (path / "model.safetensors").write_bytes(b"not really weights")
    (path / "tokenizer.json").write_text("{}")
    return path


def test_refuses_a_non_empty_output_without_force(tmp_path, capsys):
    ckpt = _fake_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _convert(ckpt, out) == 2  # usage: the output is not free
    assert "is not empty - pass --force" in capsys.readouterr().err
    # --force deletes only what looks like a bundle or a failed conversion
    assert _convert(ckpt, out, "--force") == 2
    assert "does not look like a bundle" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_refuses_to_write_into_the_source_and_bad_combinations(tmp_path, capsys):
    ckpt = _fake_checkpoint(tmp_path / "ckpt")
    assert _convert(ckpt, ckpt) == 2
    assert "would overwrite the source checkpoint" in capsys.readouterr().err
    assert _convert(ckpt, tmp_path / "o", "--precision", "fp16") == 2
    assert "fp16 is CUDA-only" in capsys.readouterr().err
    assert _convert(ckpt, tmp_path / "o", "--int4-block-size", "64") == 2
    assert "need --precision int4 or int8" in capsys.readouterr().err
    assert _convert(tmp_path / "missing", tmp_path / "o") == 3  # no model: ExitCode.MODEL
    assert "no such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_fix_genai_config_merges_eos_and_drops_threads(tmp_path):
    genai = {
        "model": {
            "eos_token_id": 7,
            "pad_token_id": 999,
            "vocab_size": 100,
            "decoder": {"session_options": {"intra_op_num_threads": 4, "log_id": "x"}},
        }
    }
    (tmp_path / "genai_config.json").write_text(json.dumps(genai))
    fixed = fix_genai_config(
        tmp_path, {"eos_token_id": 1, "pad_token_id": None}, {"eos_token_id": [1, 9, 500]}
    )
    model = fixed["model"]
    assert model["eos_token_id"] == [1, 9, 7]  # config, generation_config, builder; 500 > vocab
    assert model["pad_token_id"] == 1  # 999 is outside the vocabulary
    assert model["decoder"]["session_options"] == {"log_id": "x"}
    assert json.loads((tmp_path / "genai_config.json").read_text()) == fixed


def test_add_bos_decision(tmp_path):
    from testkit.tiny import make_tiny_tokenizer

    adds = tmp_path / "adds"
    make_tiny_tokenizer(adds, tokenizer_adds_bos=True)
    plain = tmp_path / "plain"
    make_tiny_tokenizer(plain, tokenizer_adds_bos=False)  # add_bos_token: false
    npm_like = tmp_path / "npm"  # no post-processor BOS, no flag, but a bos_token (llama3 npm)
    make_tiny_tokenizer(npm_like, tokenizer_adds_bos=False)
    cfg = json.loads((npm_like / "tokenizer_config.json").read_text())
    del cfg["add_bos_token"]
    (npm_like / "tokenizer_config.json").write_text(json.dumps(cfg))

    src = Source("path", "x", tmp_path, {})
    nothing = tmp_path / "empty-checkpoint"
    nothing.mkdir()

    def decide(bundle: Path, bos: int | None = 0, mode: str = "auto", source=src, ckpt=nothing):
        return decide_add_bos(bundle, ckpt, bos, mode, source.hints)

    assert decide(adds) == (True, "tokenizer.json adds BOS itself")
    assert decide(plain)[0] is False
    assert decide(npm_like)[0] is True
    # the flag is read from the checkpoint too (transformers drops it when re-saving)
    assert decide(npm_like, ckpt=plain)[0] is False
    gguf_src = Source("gguf", "x", tmp_path, {}, {"gguf_add_bos_token": False})
    del cfg["bos_token"]
    (npm_like / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert decide(npm_like, source=gguf_src)[0] is False
    assert decide(adds, mode="no")[0] is False
    assert decide(adds, bos=None)[0] is False


def test_compare_scores():
    result = compare([[1, 2, 3], [4, 5], []], [[1, 2, 3], [4, 6, 7], []], lambda ids: "")
    assert result["exact"] == pytest.approx(2 / 3)
    assert result["token_agreement"] == pytest.approx((1 + 0.5 + 1) / 3, abs=1e-6)
    assert result["verdict_agreement"] == 1.0
    assert [d["diverges_at"] for d in result["details"]] == [None, 1, None]


def test_validation_inputs(tmp_path):
    texts = builtin_texts(10)
    assert len(texts) == 10 and texts[0] == build_input(*EXAMPLES[0])
    assert texts[8] == texts[0]  # cycles
    assert any(EXAMPLES[i][1] is None for i in range(len(EXAMPLES)))  # prompt-only included
    bench = [
        {"instruction": "x", "input": format_pair("hi there", None), "output": "unharmful"},
        {"instruction": "x", "input": format_pair("q", "a"), "output": "harmful"},
        {"instruction": "x", "input": "garbage", "output": "harmful"},
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench))
    assert file_texts(path, 5) == [build_input("hi there"), build_input("q", "a")]
    teacher = tmp_path / "teacher.jsonl"
    teacher.write_text(json.dumps({"prompt": build_input("p", "r"), "label": "x"}) + "\n")
    assert file_texts(teacher, 1) == [build_input("p", "r")]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="no GuardReasoner items"):  # a bad option: exit 2
        file_texts(tmp_path / "bad.json", 2)


# ---------------------------------------------------------------- slow: real conversions


@pytest.mark.slow
def test_fp32_bundle_is_complete_and_exact(tiny, fp32_bundle):
    import onnxruntime_genai as og

    assert verify(fp32_bundle) == []
    assert verify(fp32_bundle, full=True) == []
    manifest = read_manifest(fp32_bundle)
    bos, eos, eot = _tiny_ids(tiny)

    # genai_config: the EOS list merges config.json (eos) and generation_config.json (eos, eot)
    genai = json.loads((fp32_bundle / "genai_config.json").read_text())
    assert genai["model"]["eos_token_id"] == [eos, eot]
    assert genai["model"]["pad_token_id"] == eos
    assert "intra_op_num_threads" not in json.dumps(genai)
    assert manifest.eos_token_ids == [eos, eot] and manifest.pad_token_id == eos
    assert manifest.bos_token_id == bos and manifest.add_bos is True

    assert manifest.precision == "fp32" and manifest.target == "cpu"
    assert manifest.template == TEMPLATE_ID
    assert manifest.context_length == genai["model"]["context_length"] == 131072
    assert manifest.source["kind"] == "path"
    weights = tiny / "model.safetensors"
    assert manifest.source["weights"]["model.safetensors"] == sha256_file(weights)
    arch = manifest.architecture
    assert (arch["layers"], arch["hidden"], arch["heads"], arch["kv_heads"]) == (2, 64, 4, 2)
    assert (arch["head_dim"], arch["vocab"], arch["intermediate"]) == (16, 400, 128)
    assert arch["tied_embeddings"] is True and arch["rope_scaling"]["rope_type"] == "llama3"
    for dist in ("guardcli", "torch", "transformers", "onnxruntime", "onnxruntime-genai", "python"):
        assert manifest.built_with[dist]
    assert "shared_embeddings=true" in manifest.built_with["builder_options"]
    assert {"model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json"} <= set(
        manifest.files
    )

    v = manifest.validation
    assert v["passed"] is True and v["exact"] == 1.0
    assert v["token_agreement"] == 1.0 and v["verdict_agreement"] == 1.0
    assert v["samples"] == 4 and v["max_new_tokens"] == 48
    assert v["reference"].startswith("transformers ") and v["reference"].endswith("fp32 cpu")
    assert all(n > 100 for n in v["prompt_tokens"])  # real GuardReasoner inputs

    model = og.Model(str(fp32_bundle))
    tokenizer = og.Tokenizer(model)
    assert len(tokenizer.encode("Human user:\nhi")) > 0


def test_last_position_logits_change_no_token(tiny, fp32_bundle, tmp_path):
    """The rewritten head (the default) and the builder's full head give the same greedy tokens
    for right-padded rows of different lengths, and the same logits wherever genai reads them:
    a prefill's last position, a decode step, a reader appending after a rewind."""
    import numpy as np
    import onnx

    from export.convert.lastpos import MARK
    from guardcli.backends.genai import GenaiBackend, open_engine

    full = tmp_path / "all-positions"
    assert _convert(tiny, full, "--all-positions", "--validate", "1", "--max-new-tokens", "8") == 0
    graphs = {
        b: onnx.load(str(b / "model.onnx"), load_external_data=False) for b in (fp32_bundle, full)
    }
    assert any(n.name.startswith(MARK) for n in graphs[fp32_bundle].graph.node)
    assert not any(n.name.startswith(MARK) for n in graphs[full].graph.node)
    assert read_manifest(fp32_bundle).built_with["logits"].startswith("last-position logits")
    assert read_manifest(full).built_with["logits"].startswith("all positions")

    prompts = [list(range(5, 45)), list(range(60, 67)), list(range(100, 121)), [7]]
    runs = [open_engine(b).generate(prompts, max_new_tokens=12) for b in (fp32_bundle, full)]
    assert [r.tokens for r in runs[0]] == [r.tokens for r in runs[1]]
    assert all(len(r.tokens) for r in runs[0])

    def read(bundle: Path) -> list[np.ndarray]:
        reader = GenaiBackend(bundle).reader(64)
        seen = []
        for ids, rewind in ((prompts[0], 30), (prompts[1], None)):
            reader.append(ids)
            seen.append(np.asarray(reader.logits(range(400))))
            if rewind:
                reader.rewind(rewind)
        return seen

    for a, b in zip(read(fp32_bundle), read(full), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_tied_embedding_rewrite_keeps_one_copy_and_the_numbers(tmp_path):
    """The builder's Transpose(head weight) -> Gather becomes a Gather of the weight stored as
    [vocab, hidden] and a transB head: embeddings and logits equal to the original graph's, no
    constant left for onnxruntime to fold into a copy, the external bytes transposed in place,
    and a second run finds nothing to do."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from export.convert.tied import MARK, rewrite

    weight = np.random.default_rng(0).standard_normal((6, 11)).astype("float32")  # [hidden, vocab]
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["w"], ["wt"], name="t", perm=[1, 0]),
            helper.make_node("Gather", ["wt", "input_ids"], ["emb"], name="g"),
            helper.make_node("MatMul", ["emb", "w"], ["logits"], name="/lm_head/MatMul"),
        ],
        "tied",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", 11]),
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["batch", "seq", 6]),
        ],
        [numpy_helper.from_array(weight, "w")],
    )
    ids = np.array([[3, 0, 10], [7, 7, 1]], dtype=np.int64)
    for external in (False, True):
        path = tmp_path / f"external-{external}" / "model.onnx"
        path.parent.mkdir()
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, str(path), save_as_external_data=external, size_threshold=0)

        def run(path: Path = path) -> list[np.ndarray]:
            return ort.InferenceSession(str(path)).run(None, {"input_ids": ids})

        before = run()
        assert rewrite(path).startswith("tied embeddings stored once")
        after = onnx.load(str(path))
        assert [n.op_type for n in after.graph.node] == ["Gather", "FusedMatMul"]
        assert after.graph.node[1].name.startswith(MARK)
        assert list(after.graph.initializer[0].dims) == [11, 6]
        np.testing.assert_array_equal(numpy_helper.to_array(after.graph.initializer[0]), weight.T)
        for got, want in zip(run(), before, strict=True):
            np.testing.assert_array_equal(got, want)
        assert rewrite(path) is None


def test_converted_bundle_has_no_transposed_weight(fp32_bundle):
    import onnx

    from export.convert.tied import MARK

    model = onnx.load(str(fp32_bundle / "model.onnx"), load_external_data=False)
    constants = {i.name for i in model.graph.initializer}
    folded = [n for n in model.graph.node if n.op_type == "Transpose" and n.input[0] in constants]
    assert folded == []
    assert [n.op_type for n in model.graph.node if n.name.startswith(MARK)] == ["FusedMatMul"]
    assert read_manifest(fp32_bundle).built_with["embeddings"].startswith("tied embeddings")


@pytest.mark.slow
def test_tampered_file_is_reported(fp32_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(fp32_bundle, copy)
    assert verify(copy) == []
    path = copy / "tokenizer_config.json"
    path.write_text(path.read_text() + " ")
    problems = verify(copy)
    assert [(p.path, p.reason) for p in problems] == [("tokenizer_config.json", "modified")]
    (copy / "model.onnx.data").unlink()
    reasons = {p.path: p.reason for p in verify(copy, full=True)}
    assert reasons == {"tokenizer_config.json": "modified", "model.onnx.data": "missing"}


@pytest.mark.slow
@pytest.mark.parametrize("precision,bits", [("int4", 4), ("int8", 8)])
def test_quantized_bundle(tiny, tmp_path, precision, bits):
    import onnxruntime_genai as og

    out = tmp_path / precision
    extra = ["--int4-block-size", "32"] if precision == "int4" else []
    assert (
        _convert(
            tiny, out, "--precision", precision, "--validate", "2", "--max-new-tokens", "16", *extra
        )
        == 0
    )
    assert verify(out) == []
    manifest = read_manifest(out)
    assert manifest.precision == precision
    assert f"bits={bits}" in manifest.built_with["quantization"]
    v = manifest.validation
    assert v["passed"] is True and v["samples"] == 2
    for key in ("exact", "token_agreement", "verdict_agreement"):
        assert 0.0 <= v[key] <= 1.0
    fp32_size = 8_787_200  # tiny fp32 model.onnx.data, dominated by the 131072-row RoPE cache
    assert (out / "model.onnx.data").stat().st_size < fp32_size
    og.Model(str(out))


@pytest.mark.slow
def test_fp32_mismatch_fails_but_keeps_an_honest_manifest(tiny, tmp_path, monkeypatch, capsys):
    import export.convert.validate as validate

    real = validate.bundle_greedy

    def corrupted(*args, **kwargs):
        out = real(*args, **kwargs)
        out[0] = [*out[0][:3], (out[0][3] + 1) % 400]  # diverge at token 3
        return out

    monkeypatch.setattr(validate, "bundle_greedy", corrupted)
    out = tmp_path / "bad"
    assert _convert(tiny, out, "--validate", "2", "--max-new-tokens", "8") == 1
    err = capsys.readouterr().err
    assert "validation failed" in err and "1 of 2" in err
    manifest = read_manifest(out)
    assert manifest.validation["passed"] is False
    assert manifest.validation["exact"] == 0.5
    assert manifest.validation["details"][0]["diverges_at"] == 3
    assert verify(out) == []


@pytest.mark.slow
def test_tokenizer_override_and_no_bos(tiny, tmp_path):
    from tokenizers import Tokenizer

    from testkit.tiny import make_tiny_tokenizer

    override = tmp_path / "tok"
    make_tiny_tokenizer(override, tokenizer_adds_bos=False)
    before = {p.name: sha256_file(p) for p in tiny.iterdir()}
    out = tmp_path / "nobos"
    assert (
        _convert(
            tiny, out, "--tokenizer", str(override), "--validate", "1", "--max-new-tokens", "8"
        )
        == 0
    )
    manifest = read_manifest(out)
    assert manifest.add_bos is False
    assert manifest.validation["exact"] == 1.0
    tokenizer = Tokenizer.from_file(str(override / "tokenizer.json"))
    unprefixed = tokenizer.encode(build_input(*EXAMPLES[0]), add_special_tokens=False).ids
    assert manifest.validation["prompt_tokens"][0] == len(unprefixed)  # no BOS prepended
    assert {p.name: sha256_file(p) for p in tiny.iterdir()} == before  # source untouched


@pytest.mark.slow
def test_gguf_source(tiny, tmp_path):
    from testkit.tiny import make_tiny_gguf

    gguf_path = make_tiny_gguf(tiny, tmp_path / "tiny-f32.gguf")
    out = tmp_path / "from-gguf"
    assert _convert(gguf_path, out, "--validate", "2", "--max-new-tokens", "16") == 0
    assert verify(out) == []
    manifest = read_manifest(out)
    assert manifest.source == {
        "kind": "gguf",
        "id": "tiny-f32.gguf",
        "path": str(gguf_path.resolve()),
        "sha256": sha256_file(gguf_path),
    }
    assert manifest.add_bos is True
    assert manifest.validation["exact"] == 1.0
    assert manifest.architecture["layers"] == 2 and manifest.architecture["tied_embeddings"]
