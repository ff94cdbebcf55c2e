"""Tied embeddings stored once, in the embedding's layout: no transposed copy at load.

For a model with tied embeddings (SmolLM2, Llama 3.2 and so GuardReasoner-1B) the builder
stores the shared matrix as the LM head's ``[hidden, vocab]`` MatMul weight and feeds the
embedding lookup through ``Transpose(weight) -> Gather``. onnxruntime folds that Transpose into
a new constant when a session loads: a private, never-freed copy of the whole matrix (nano:
113 MB of 540; the 1B shape: 1,050 MB of 4,977), most of what ``--low-memory`` could not give
back (docs/bench, round 2, goal 4).

The rewrite stores the matrix as ``[vocab, hidden]`` instead (the same bytes, transposed in
place inside ``model.onnx.data``): the Gather reads its rows directly, and the head becomes
``FusedMatMul(x, weight, transB=1)``, which onnxruntime prepacks exactly as it packed the
MatMul. Reading the columns of the old layout instead (``Gather(axis=1)``, graph only) was
measured first: same memory, but the strided reads cost the 1B shape ~15-20% of its prefill.
Gather copies values and the transposed product sums the same terms, so tokens are unchanged
(tests/test_convert.py). int4/int8 bundles share their quantized weight through
GatherBlockQuantized already and have no such Transpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARK = "guardcli_tied_embedding"  # the rewritten head's node-name prefix
MS_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class Tied:
    weight: Any  # onnx.TensorProto, [hidden, vocab] before the rewrite
    transpose: Any  # the Transpose feeding the Gather
    gather: Any
    head: Any  # MatMul(x, weight)


def find(graph: Any) -> Tied | None:
    """The builder's tied pattern, when the weight feeds exactly that Transpose and one MatMul
    as its right operand; anything else is left alone."""
    constants = {i.name: i for i in graph.initializer}
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    for node in graph.node:
        weight = constants.get(node.input[0]) if node.op_type == "Transpose" else None
        if weight is None or len(weight.dims) != 2:
            continue
        perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
        gathers = users.get(node.output[0], [])
        others = [n for n in users[weight.name] if n is not node]
        if (
            perm == [[1, 0]]
            and len(gathers) == 1
            and gathers[0].op_type == "Gather"
            and gathers[0].input[0] == node.output[0]
            and [a.i for a in gathers[0].attribute if a.name == "axis"] in ([], [0])
            and len(others) == 1
            and others[0].op_type == "MatMul"
            and list(others[0].input)[1:] == [weight.name]
        ):
            return Tied(weight, node, gathers[0], others[0])
    return None


def rewrite_graph(model: Any, tied: Tied) -> None:
    """The graph half: the weight declared ``[vocab, hidden]``, the Gather reading it, the head
    multiplying by its transpose. The caller stores the bytes in that layout."""
    from onnx import helper

    graph = model.graph
    hidden, vocab = tied.weight.dims
    tied.weight.dims[:] = [vocab, hidden]
    tied.gather.input[0] = tied.weight.name
    head = helper.make_node(
        "FusedMatMul",
        list(tied.head.input),
        list(tied.head.output),
        name=f"{MARK}/{tied.head.name.strip('/')}",
        domain=MS_DOMAIN,
        transB=1,
        alpha=1.0,
    )
    nodes = [n for n in graph.node if n is not tied.transpose]
    nodes[nodes.index(tied.head)] = head
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))


def rewrite(model_path: Path) -> str | None:
    """Rewrite a converted bundle's ``model.onnx`` and its weight bytes in place; a one-line
    description for the manifest, or None when there is nothing to do (untied, quantized,
    already rewritten)."""
    import numpy as np
    import onnx
    from onnx import helper

    model = onnx.load(str(model_path), load_external_data=False)
    tied = find(model.graph)
    if tied is None:
        return None
    where = {e.key: e.value for e in tied.weight.external_data}
    dtype = helper.tensor_dtype_to_np_dtype(tied.weight.data_type)
    if where:
        data = model_path.parent / where["location"]
        offset, shape = int(where.get("offset", 0)), tuple(tied.weight.dims)
        with open(data, "r+b") as handle:
            handle.seek(offset)
            stored = np.frombuffer(handle.read(int(where["length"])), dtype=dtype).reshape(shape)
            handle.seek(offset)
            handle.write(np.ascontiguousarray(stored.T).tobytes())
    else:
        stored = onnx.numpy_helper.to_array(tied.weight)
        del tied.weight.float_data[:]
        tied.weight.raw_data = np.ascontiguousarray(stored.T).tobytes()
    rewrite_graph(model, tied)
    onnx.save(model, str(model_path))
    return (
        f"tied embeddings stored once as [vocab, hidden] ({tied.weight.name}: Gather rows, "
        "FusedMatMul transB head; no transposed copy)"
    )
