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

    def share(self, ids: Sequence[int]) -> None:
        self._read(0, ids, 0)
        self._head = self._kv[:, :, 0, :, : len(ids)].copy()

    def fill(self, slot: int, ids: Sequence[int], shared: int) -> int:
        if len(ids) > self._max_length:
            raise ModelError(
                f"input of {len(ids)} tokens does not fit the pool's {self._max_length}"
            )
        if shared:
            self._kv[:, :, slot, :, :shared] = self._head[:, :, :, :shared]
        return self._read(slot, ids, shared)

    def _read(self, slot: int, ids: Sequence[int], start: int) -> int:
        """Read ``ids[start:]`` into ``slot`` (whose cache holds ``ids[:start]``)."""
        np = self._np
        binding = self._binding(slot, 1)
        logits = None
        for begin in range(start, len(ids), self._chunk):
            piece = ids[begin : begin + self._chunk]
            total = begin + len(piece)
            mask = np.ones((1, total), dtype=self._mask_type)
            logits = self._run(binding, np.asarray([piece], dtype=self._ids_type), mask)
        self._lengths[slot] = len(ids)
        return int(logits[0, -1].argmax())

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
        binding.bind_output(self._logits_name)
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:  # noqa: BLE001 - native errors carry no useful type
            raise ModelError(f"onnxruntime failed to generate: {exc}") from exc
        # The last output bound is the logits (the caches were bound first).
        return binding.get_outputs()[-1].numpy()

    def close(self) -> None:
        self._bound.clear()
        self._kv = self._head = None


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


def open_session(model_path: str, *, threads: int, no_prepacking: bool) -> Any:
    """An onnxruntime CPU session set up as GenaiBackend sets up onnxruntime-genai's."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if no_prepacking:
        options.add_session_config_entry("session.disable_prepacking", "1")
    try:
        return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - native errors carry no useful type
        raise ModelError(f"cannot load the ONNX model {model_path}: {exc}") from exc
