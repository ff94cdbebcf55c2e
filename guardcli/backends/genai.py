"""The onnxruntime-genai backend: a bundle directory in, greedy tokens out.

Imported lazily (onnxruntime-genai takes ~0.3 s to import and loads native libraries), so
``guardcli --help`` and dry runs stay instant and work without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guardcli.core.engine import Engine
from guardcli.errors import ModelError, one_of

DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when onnxruntime-genai has it here

# --low-memory: onnxruntime memory-maps a bundle's external weights, then by default "prepacks"
# every MatMul weight into a private copy laid out for its kernels. Without prepacking the
# weights stay file-backed pages: shared by every process that maps the bundle (a server's
# workers, batch's Ray actors) and reclaimable under memory pressure. Measured (docs/bench,
# round 2): GuardReasoner-1B-shape fp32 private memory 6.0 -> 1.3 GB (0.3 GB with tied
# embeddings stored once, export/convert/tied.py), decode 8-34% slower.
# Only for float weights: MatMulNBits (int4/int8) unpacked decoded ~30x slower.
MAPPABLE_PRECISIONS = frozenset({"fp32", "fp16"})
# onnxruntime-genai 0.18 passes a string-valued session option it does not know on to
# onnxruntime as a session config entry; this is onnxruntime's key for turning prepacking off.
NO_PREPACKING = {"session.disable_prepacking": "1"}
# A single-row read appends at most this many ids per model call. onnxruntime-genai binds a
# [rows, appended ids, vocabulary] float32 logits buffer for every call (the graph's last-position
# head fills each position with the same row: export/convert/lastpos.py), so a 700-id prompt took
# a 137 MB (nano) or 359 MB (GuardReasoner-1B) transient; in chunks of 256 it is at most 50 or
# 131 MB, and a chunk of 256 ids keeps the matrix products as fast as the whole prompt's.
PREFILL_CHUNK = 256


def default_threads() -> int:
    """All cores this process may use: onnxruntime-genai used one core until told otherwise."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def no_telemetry() -> None:
    """onnxruntime sets up Microsoft's telemetry on load (a device id and event databases under
    ~/.cache/Microsoft); an offline guard should leave no such trace, so it is off unless the
    user set ORT_DISABLE_TELEMETRY themselves. Called before every import of the runtime."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def cuda_available() -> bool:
    no_telemetry()
    try:
        import onnxruntime_genai as og
    except ImportError:
        return False
    probe = getattr(og, "is_cuda_available", None)
    try:
        return bool(probe and probe())
    except Exception:  # noqa: BLE001 - a broken CUDA install means "no CUDA", not a crash
        return False


def pick_device(requested: str) -> str:
    if requested not in DEVICES:
        raise ModelError(f"unknown device {requested!r}", hint="use " + one_of(DEVICES))
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    if requested == "cuda" and not cuda_available():
        raise ModelError(
            "CUDA was requested but onnxruntime-genai has no CUDA here",
            hint="pip install 'guardcli[cuda]' on a machine with an NVIDIA GPU, "
            "or use --device cpu",
        )
    return requested


class _GenaiDecoder:
    def __init__(self, og: Any, generator: Any, batch: int) -> None:
        self._og = og
        self._generator = generator
        self._batch = batch

    def step(self) -> Sequence[int]:
        self._generator.generate_next_token()
        return [int(t) for t in self._generator.get_next_tokens()[: self._batch]]

    def close(self) -> None:
        self._generator = None


class _GenaiReader:
    def __init__(self, np: Any, generator: Any, chunk: int) -> None:
        self._np = np
        self._generator = generator
        self._chunk = chunk or 1 << 30  # 0: the whole input in one call

    def append(self, ids: Sequence[int]) -> None:
        try:
            for start in range(0, len(ids), self._chunk):
                chunk = ids[start : start + self._chunk]
                self._generator.append_tokens(self._np.asarray([chunk], dtype=self._np.int32))
        except Exception as exc:  # noqa: BLE001 - native errors carry no useful type
            raise ModelError(f"onnxruntime-genai failed to read the input: {exc}") from exc

    def rewind(self, length: int) -> None:
        self._generator.rewind_to(length)

    def logits(self, tokens: Sequence[int]) -> Sequence[float]:
        row = self._generator.get_logits()[0, -1]
        return [float(row[t]) for t in tokens]

    def next_token(self) -> int:
        self._generator.generate_next_token()
        return int(self._generator.get_next_tokens()[0])

    def close(self) -> None:
        self._generator = None


class GenaiBackend:
    name = "onnxruntime-genai"

    def __init__(
        self,
        bundle_dir: Path,
        *,
        device: str = "cpu",
        threads: int | None = None,
        session_options: dict[str, Any] | None = None,
        mapped_weights: bool = False,
        pooling: bool = True,
    ):
        """``session_options`` go to onnxruntime-genai's ``session_options`` over ours
        (e.g. ``enable_cpu_mem_arena``); scripts/bench.py measures them side by side.
        ``mapped_weights``: keep the weights as mapped file pages (NO_PREPACKING)."""
        no_telemetry()
        try:
            import numpy as np
            import onnxruntime_genai as og
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ModelError(
                f"onnxruntime-genai is not importable ({exc})",
                hint="reinstall guardcli: pip install --force-reinstall guardcli",
            ) from exc
        self._og, self._np = og, np
        self.device = device
        self.threads = threads or default_threads()
        genai_config = _read_genai_config(bundle_dir)
        model_cfg = genai_config.get("model", {})
        eos = model_cfg.get("eos_token_id", [])
        self.eos_token_ids = frozenset(eos if isinstance(eos, list) else [eos])
        self.pad_token_id = int(model_cfg.get("pad_token_id", next(iter(self.eos_token_ids), 0)))
        self.context_length = int(model_cfg.get("context_length", 2048))
        self.mapped_weights = mapped_weights
        self.prefill_chunk = PREFILL_CHUNK  # scripts/bench.py measures 0 (whole) beside it
        self._bundle_dir = Path(bundle_dir)
        self._decoder = model_cfg.get("decoder", {})
        self._session_options = session_options or {}
        self._loaded: Any = None
        self._ort_session: Any = None
        # On CPU, batch-1 reads and generate(slots=N) run on onnxruntime itself (a slot pool:
        # guardcli.backends.ortslots) and onnxruntime-genai's model is never loaded unless a
        # batch is started as one (start(): pooling off, or sampling for HS-DPO);
        # scripts/bench.py turns it off to measure onnxruntime-genai alone.
        self.pooling = pooling and device == "cpu"
        # The runtime this backend generates with is loaded now, so a broken bundle fails
        # here, before any input is read; the other one only if it is ever asked for.
        if self.pooling:
            self._session()
        else:
            self._model  # noqa: B018 - a property that loads

    @property
    def _model(self) -> Any:
        """onnxruntime-genai's model, loaded on first use: a scan that only generates through
        the slot pool never holds a second copy of the weights."""
        if self._loaded is None:
            og = self._og
            try:
                config = og.Config(str(self._bundle_dir))
                options = {"intra_op_num_threads": self.threads}
                if self.device == "cpu":
                    options["inter_op_num_threads"] = 1
                if self.mapped_weights:
                    options.update(NO_PREPACKING)
                options.update(self._session_options)
                config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
                config.clear_providers()
                if self.device == "cuda":
                    config.append_provider("cuda")
                self._loaded = og.Model(config)
            except Exception as exc:  # noqa: BLE001 - native errors carry no useful type
                raise ModelError(
                    f"cannot load the ONNX model in {self._bundle_dir}: {exc}"
                ) from exc
        return self._loaded

    def pool(self, slots: int, max_length: int) -> Any:
        """A slot pool (guardcli.core.slots) on this bundle's graph, or None where there is
        none: off, or on CUDA."""
        if not self.pooling:
            return None
        from guardcli.backends.ortslots import OrtSlots

        return OrtSlots(self._session(), self._decoder, slots, max_length, self.prefill_chunk)

    def _session(self) -> Any:
        """The onnxruntime session the pool and the CPU reader share, opened on first use."""
        if self._ort_session is None:
            from guardcli.backends.ortslots import open_session

            model = self._bundle_dir / self._decoder.get("filename", "model.onnx")
            self._ort_session = open_session(
                str(model),
                threads=self.threads,
                no_prepacking=self.mapped_weights,
                overrides=self._session_options,
            )
        return self._ort_session

    def start(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> _GenaiDecoder:
        return self.start_search(prompts, max_new_tokens, {"do_sample": False}, "generation")

    def reader(self, max_length: int) -> Any:
        if self.pooling:  # on CPU: the pool's runtime, so one copy of the weights serves all
            from guardcli.backends.ortslots import OrtReader, OrtSlots

            cache = OrtSlots(self._session(), self._decoder, 1, max_length, self.prefill_chunk)
            return OrtReader(cache)
        og = self._og
        try:
            params = og.GeneratorParams(self._model)
            params.set_search_options(max_length=max_length, batch_size=1, do_sample=False)
            return _GenaiReader(self._np, og.Generator(self._model, params), self.prefill_chunk)
        except Exception as exc:  # noqa: BLE001 - native errors carry no useful type
            raise ModelError(f"onnxruntime-genai failed to start triage: {exc}") from exc

    def start_search(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        search_options: dict[str, Any],
        action: str,
    ) -> _GenaiDecoder:
        """Start ``prompts`` as one batch with these onnxruntime-genai search options (besides
        max_length and batch_size); ``action`` names the work in the error message."""
        og, np = self._og, self._np
        longest = max(len(p) for p in prompts)
        # Right padding with pad_token_id: genai silently corrupts left-padded rows.
        batch = np.full((len(prompts), longest), self.pad_token_id, dtype=np.int32)
        for row, ids in enumerate(prompts):
            batch[row, : len(ids)] = ids
        try:
            params = og.GeneratorParams(self._model)
            params.set_search_options(
                max_length=longest + max_new_tokens,
                batch_size=len(prompts),
                **search_options,
            )
            generator = og.Generator(self._model, params)
            generator.append_tokens(batch)
        except Exception as exc:  # noqa: BLE001 - native errors carry no useful type
            raise ModelError(f"onnxruntime-genai failed to start {action}: {exc}") from exc
        return _GenaiDecoder(og, generator, len(prompts))


def _read_genai_config(bundle_dir: Path) -> dict[str, Any]:
    path = Path(bundle_dir) / "genai_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{bundle_dir} has no genai_config.json - not an ONNX bundle") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from exc


def open_engine(bundle_dir, *, device: str = "cpu", threads: int | None = None) -> Engine:  # noqa: ANN001
    """An Engine over a bundle's ONNX model (no manifest checks: see guardcli.bundles.resolve)."""
    return Engine(GenaiBackend(bundle_dir, device=pick_device(device), threads=threads))
