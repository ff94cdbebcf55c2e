"""Logits for the last real position of each row only: the prefill's LM head shrinks from
``rows x sequence x hidden x vocabulary`` to ``rows x hidden x vocabulary``.

The builder's graph applies the LM head to every input position, but generation reads one
position per row: onnxruntime-genai copies the logits of the last non-pad token of each
(right-padded) row out of the ``[rows, sequence, vocab]`` output, and guardcli's fast triage
reads the last position of its single row. The head is most of a prefill's arithmetic at these
sizes (nano: 49,152 x 576 per position; GuardReasoner-1B: 128,256 x 2,048), so the rewrite
gathers, before the head, the hidden state at ``(real tokens among this call's positions) - 1``
of each row (from the attention mask's last ``sequence`` columns: right padding in a prefill,
always the single new position in a decode step) and broadcasts the resulting
``[rows, 1, vocab]`` back to the ``[rows, sequence, vocab]`` genai binds. Every position then
holds its row's last-position logits, so whichever position genai copies (the last non-pad
token, the same index) gets exactly the values the full head computed there.

The output keeps its name, shape and dtype; only ``model.onnx`` (the graph, not the weights)
changes. ``export.convert --all-positions`` leaves the builder's graph as it is.
"""

from __future__ import annotations

from pathlib import Path

from export import ConvertError

LOGITS = "logits"
HEADS = ("MatMul", "MatMulNBits")
PASS_THROUGH = ("Cast",)  # between the head and the output: elementwise, shape-preserving
MARK = "guardcli_last_position"  # a node-name prefix: rewriting twice is refused


def rewrite(model_path: Path) -> str:
    """Rewrite ``model_path`` in place; returns a one-line description for the manifest."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_path), load_external_data=False)
    graph = model.graph
    if any(n.name.startswith(MARK) for n in graph.node):
        raise ConvertError(f"{model_path}: the last-position rewrite is already applied")
    inputs = {i.name for i in graph.input}
    missing = {"input_ids", "attention_mask"} - inputs
    if missing or LOGITS not in {o.name for o in graph.output}:
        raise ConvertError(
            f"{model_path}: no {', '.join(sorted(missing)) or LOGITS} in the graph",
            hint="pass --all-positions to keep the builder's graph",
        )
    producer = {out: node for node in graph.node for out in node.output}
    node = producer.get(LOGITS)
    last = node
    while node is not None and node.op_type in PASS_THROUGH:
        node = producer.get(node.input[0])
    if node is None or node.op_type not in HEADS:
        raise ConvertError(
            f"{model_path}: cannot find the LM head behind {LOGITS!r}",
            hint="pass --all-positions to keep the builder's graph",
        )
    head, hidden = node, node.input[0]

    def name(part: str) -> str:
        return f"{MARK}/{part}"

    def const(part: str, values: list[int]) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(values, "int64"), name(part)))
        return name(part)

    one, zero = const("one", [1]), const("zero", [0])
    two, three = const("two", [2]), const("three", [3])
    axis1, axis2 = const("axis1", [1]), const("axis2", [2])
    big = const("end", [2**62])
    gather = [
        helper.make_node("Shape", ["input_ids"], [name("ids_shape")], name=name("ids_shape")),
        helper.make_node("Slice", [name("ids_shape"), one, two], [name("seq")], name=name("seq")),
        helper.make_node("Neg", [name("seq")], [name("neg_seq")], name=name("neg_seq")),
        helper.make_node(
            "Slice",
            ["attention_mask", name("neg_seq"), big, axis1],
            [name("mask_tail")],
            name=name("mask_tail"),
        ),
        helper.make_node(
            "Cast", [name("mask_tail")], [name("mask64")], name=name("mask64"), to=TensorProto.INT64
        ),
        helper.make_node(
            "ReduceSum", [name("mask64"), axis1], [name("count")], name=name("count"), keepdims=1
        ),
        helper.make_node("Sub", [name("count"), one], [name("index0")], name=name("index0")),
        helper.make_node("Max", [name("index0"), zero], [name("index")], name=name("index")),
        helper.make_node("Unsqueeze", [name("index"), axis2], [name("index3")], name=name("idx3")),
        helper.make_node("Shape", [hidden], [name("h_shape")], name=name("h_shape")),
        helper.make_node("Slice", [name("h_shape"), zero, one], [name("rows")], name=name("rows")),
        helper.make_node("Slice", [name("h_shape"), two, three], [name("width")], name=name("w")),
        helper.make_node(
            "Concat", [name("rows"), one, name("width")], [name("g_shape")], name=name("g"), axis=0
        ),
        helper.make_node(
            "Expand", [name("index3"), name("g_shape")], [name("g_index")], name=name("g_index")
        ),
        helper.make_node(
            "GatherElements",
            [hidden, name("g_index")],
            [name("hidden_last")],
            name=name("hidden_last"),
            axis=1,
        ),
    ]
    head.input[0] = name("hidden_last")
    position = list(graph.node).index(head)
    for offset, new in enumerate(gather):
        graph.node.insert(position + offset, new)

    last.output[list(last.output).index(LOGITS)] = name("logits_last")
    graph.node.extend(
        [
            helper.make_node("Shape", [name("logits_last")], [name("l_shape")], name=name("l")),
            helper.make_node(
                "Slice", [name("l_shape"), two, three], [name("vocab")], name=name("vocab")
            ),
            helper.make_node(
                "Concat",
                [name("rows"), name("seq"), name("vocab")],
                [name("o_shape")],
                name=name("o_shape"),
                axis=0,
            ),
            helper.make_node(
                "Expand", [name("logits_last"), name("o_shape")], [LOGITS], name=name("expand")
            ),
        ]
    )
    onnx.save(model, str(model_path))
    return f"last-position logits ({head.op_type} {head.name} on one position per row)"
