"""A slot pool (guardcli.core.slots) on onnxruntime itself, over a bundle's ``model.onnx``.

onnxruntime-genai's generator cannot take a new row into a running batch, so the pool drives
the same graph directly. The KV cache is one array per layer and kind, ``[slots, kv heads,
max length, head size]``, bound through an IOBinding as both the ``past_key_values`` input
and the ``present`` output: the GroupQueryAttention kernel then writes each step's keys in
place (onnxruntime-genai's ``past_present_share_buffer``), at each row's own length, which it
reads from that row's attention mask. So rows of different lengths decode in one call
without padding, and a fill binds a single slot's rows (a contiguous ``[1, ...]`` view) to
read a prompt at batch 1. The input and cache names come from the bundle's genai_config.json
and are checked against the session; their dtypes are read from the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guardcli.errors import ModelError

KINDS = ("key", "value")


class OrtSlots:
    """A ``SlotCache`` of ``slots`` rows of at most ``max_length`` tokens each."""

    def __init__(
        self, session: Any, decoder: dict[str, Any], slots: int, max_length: int, chunk: int
    ):
        import numpy as np
        import onnxruntime as ort

        self._np, self._ort, self._session = np, ort, session
        self.slots = slots
        self._max_length = max_length
        self._chunk = chunk or 1 << 30
        inputs = {i.name: i for i in session.get_inputs()}
        names = decoder.get("inputs", {})
        outputs = decoder.get("outputs", {})
        self._ids_name = names.get("input_ids", "input_ids")
        self._mask_name = names.get("attention_mask", "attention_mask")
        self._logits_name = outputs.get("logits", "logits")
        layers = int(decoder["num_hidden_layers"])
        past = [names.get(f"past_{k}_names", f"past_key_values.%d.{k}") for k in KINDS]
        present = [outputs.get(f"present_{k}_names", f"present.%d.{k}") for k in KINDS]
        self._past = [[p % layer for p in past] for layer in range(layers)]
        self._present = [[p % layer for p in present] for layer in range(layers)]
        wanted = [self._ids_name, self._mask_name, *(n for pair in self._past for n in pair)]
        missing = [name for name in wanted if name not in inputs]
        if missing:
            raise ModelError(
                f"the ONNX graph has no input {missing[0]!r} that genai_config.json names"
            )
        self._ids_type = _numpy_type(np, inputs[self._ids_name].type)
        self._mask_type = _numpy_type(np, inputs[self._mask_name].type)
        kv_type = _numpy_type(np, inputs[self._past[0][0]].type)
        shape = (layers, 2, slots, int(decoder["num_key_value_heads"]), max_length)
        self._kv = np.zeros((*shape, int(decoder["head_size"])), dtype=kv_type)
        self._lengths = [0] * slots  # ids each slot's cache holds
        self._head: Any = None  # share(): [layers, 2, kv heads, length, head size]
        self._bound: dict[int, Any] = {}  # IOBindings over slots 0..n-1, by n
        # Every call's logits land in one buffer of at most max(chunk, slots) x vocabulary
        # values instead of a fresh onnxruntime allocation copied out: a 256-id chunk's logits
        # are 50 MB on nano, and allocating and copying them per call raised the peak by twice
        # that (docs/bench, round 2, goal 4). Unchunked reads (chunk 0) allocate per call.
        head = {o.name: o for o in session.get_outputs()}.get(self._logits_name)
        vocab = head.shape[-1] if head is not None else None
        self._logits_buf = None
        if chunk and isinstance(vocab, int):
            width = max(chunk, slots) * vocab
            self._logits_buf = np.empty(width, dtype=_numpy_type(np, head.type))
        self._vocab = vocab

    def share(self, ids: Sequence[int]) -> None:
        self._lengths[0] = 0
        self.extend(0, ids)
        self._head = self._kv[:, :, 0, :, : len(ids)].copy()

    def fill(self, slot: int, ids: Sequence[int], shared: int) -> int:
        if shared:
            self._kv[:, :, slot, :, :shared] = self._head[:, :, :, :shared]
        self._lengths[slot] = shared
        return int(self.extend(slot, ids[shared:]).argmax())

    def extend(self, slot: int, ids: Sequence[int]) -> Any:
        """Read ``ids`` after what ``slot`` holds, in chunks; the last one's logits row."""
        np = self._np
        if self._lengths[slot] + len(ids) > self._max_length:
            raise ModelError(
                f"{self._lengths[slot] + len(ids)} tokens do not fit the cache's {self._max_length}"
            )
        binding = self._binding(slot, 1)
        logits = None
        for begin in range(0, len(ids), self._chunk):
            piece = ids[begin : begin + self._chunk]
            total = self._lengths[slot] + len(piece)
            mask = np.ones((1, total), dtype=self._mask_type)
            logits = self._run(binding, np.asarray([piece], dtype=self._ids_type), mask)
            self._lengths[slot] = total
        return logits[0, -1].copy()  # the buffer is overwritten by the next call

    def truncate(self, slot: int, length: int) -> None:
        """Forget what ``slot`` holds past ``length`` ids (the cache rows are overwritten)."""
        self._lengths[slot] = min(self._lengths[slot], length)

    def move(self, dst: int, src: int) -> None:
        length = self._lengths[src]
        self._kv[:, :, dst, :, :length] = self._kv[:, :, src, :, :length]
        self._lengths[dst] = length

    def step(self, tokens: Sequence[int]) -> list[int]:
        np = self._np
        rows = len(tokens)
        lengths = np.asarray(self._lengths[:rows]) + 1  # each row's ids after this token
        if int(lengths.max()) > self._max_length:
            raise ModelError(f"a row ran past the pool's {self._max_length} tokens")
        mask = (np.arange(int(lengths.max()))[None, :] < lengths[:, None]).astype(self._mask_type)
        ids = np.asarray(tokens, dtype=self._ids_type)[:, None]
        logits = self._run(self._binding(0, rows), ids, mask)
        for slot in range(rows):
            self._lengths[slot] += 1
        return [int(t) for t in logits[:, -1].argmax(axis=-1)]

    def _binding(self, first: int, rows: int) -> Any:
        """An IOBinding whose caches are slots first..first+rows-1 (input and output alike)."""
        key = rows if first == 0 else -first - 1
        binding = self._bound.get(key)
        if binding is None:
            binding = self._session.io_binding()
            for layer in range(len(self._past)):
                names_in, names_out = self._past[layer], self._present[layer]
                for kind in range(2):
                    view = self._kv[layer, kind, first : first + rows]
                    value = self._ort.OrtValue.ortvalue_from_numpy(view)
                    binding.bind_ortvalue_input(names_in[kind], value)
                    binding.bind_ortvalue_output(names_out[kind], value)
            self._bound[key] = binding
        return binding

    def _run(self, binding: Any, ids: Any, mask: Any) -> Any:
        binding.bind_cpu_input(self._ids_name, ids)
        binding.bind_cpu_input(self._mask_name, mask)
        rows, width = ids.shape
        if self._logits_buf is not None and rows * width * self._vocab <= self._logits_buf.size:
            out = self._logits_buf[: rows * width * self._vocab].reshape(rows, width, self._vocab)
            binding.bind_ortvalue_output(
                self._logits_name, self._ort.OrtValue.ortvalue_from_numpy(out)
            )
        else:
            out = None
            binding.bind_output(self._logits_name)
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:  # noqa: BLE001 - native errors carry no useful type
            raise ModelError(f"onnxruntime failed to generate: {exc}") from exc
        if out is not None:
            return out
        # The last output bound is the logits (the caches were bound first).
        return binding.get_outputs()[-1].numpy()

    def close(self) -> None:
        self._bound.clear()
        self._kv = self._head = None


class OrtReader:
    """A batch-1 ``Reader`` (guardcli.core.engine) on a one-slot cache: rewinding is only
    forgetting the tail. A generated token is read into the cache when the next one is asked
    for (or more ids are appended), so the last token of a generation costs no model call."""

    def __init__(self, cache: OrtSlots) -> None:
        self._cache = cache
        self._logits: Any = None
        self._pending: int | None = None  # generated, in the sequence, not yet read

    def append(self, ids: Sequence[int]) -> None:
        ids = list(ids)
        if self._pending is not None:
            ids.insert(0, self._pending)
            self._pending = None
        if ids:
            self._logits = self._cache.extend(0, ids)

    def rewind(self, length: int) -> None:
        if self._pending is not None:
            self.append([])
        self._cache.truncate(0, length)
        self._logits = None

    def logits(self, tokens: Sequence[int]) -> Sequence[float]:
        if self._pending is not None:
            self.append([])
        return [float(self._logits[t]) for t in tokens]

    def next_token(self) -> int:
        if self._pending is not None:
            self.append([])
        self._pending = int(self._logits.argmax())
        return self._pending

    def close(self) -> None:
        self._cache.close()


def _numpy_type(np: Any, onnx_type: str) -> Any:
    types = {
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
        "tensor(float)": np.float32,
        "tensor(float16)": np.float16,
    }
    if onnx_type not in types:
        raise ModelError(
            f"the ONNX graph has an input of type {onnx_type}, which the pool cannot feed"
        )
    return types[onnx_type]


def open_session(
    model_path: str, *, threads: int, no_prepacking: bool, overrides: dict[str, Any] | None = None
) -> Any:
    """An onnxruntime CPU session set up as GenaiBackend sets up onnxruntime-genai's.
    ``overrides`` are GenaiBackend's ``session_options``: a SessionOptions attribute where one
    has the name (enable_cpu_mem_arena), else a session config entry."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if no_prepacking:
        options.add_session_config_entry("session.disable_prepacking", "1")
    for key, value in (overrides or {}).items():
        if hasattr(options, key):
            setattr(options, key, value)
        else:
            options.add_session_config_entry(key, str(value))
    try:
        return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - native errors carry no useful type
        raise ModelError(f"cannot load the ONNX model {model_path}: {exc}") from exc
