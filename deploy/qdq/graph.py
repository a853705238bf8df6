"""An ONNX graph seen as the QDQ rules see it: constants, producers, consumers, and the groups of
tensors joined by ops that keep a quantization scale."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

SCALE_KEEPING = {
    "Concat", "MaxPool", "Resize", "Slice", "Split", "Reshape", "Transpose", "Identity", "Flatten",
    "Squeeze", "Unsqueeze", "Upsample",
}  # fmt: skip


def graph_constants(model) -> dict[str, np.ndarray]:
    """Every constant tensor of an ``onnx.ModelProto`` by name: initializers and Constant nodes' values."""
    from onnx import numpy_helper

    const = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            const[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return const


class QdqGraph:
    """Producers, consumers and constants of an ONNX graph."""

    def __init__(self, model) -> None:
        self.nodes = list(model.graph.node)
        self.const = graph_constants(model)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                self.consumers[i].append(n)
        self.outputs = {o.name for o in model.graph.output}

    def attr(self, node, name: str, default: int) -> int:
        return next((a.i for a in node.attribute if a.name == name), default)

    def from_dq(self, tensor: str):
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == "DequantizeLinear" else None

    def scale(self, node) -> np.ndarray | None:
        return self.const.get(node.input[1])


def scale_groups(g: QdqGraph) -> dict[str, str]:
    """Union-find of tensors joined by scale-keeping ops; returns tensor -> group root."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for n in g.nodes:
        if n.op_type in SCALE_KEEPING:
            data_inputs = [n.input[0]] if n.op_type != "Concat" else list(n.input)
            for t in data_inputs + list(n.output):
                parent[find(t)] = find(n.output[0])
    return {t: find(t) for t in parent}
