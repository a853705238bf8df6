"""What the QDQ check finds: each broken rule with its nodes, and the counts of one model."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Violation:
    """One broken rule, with the nodes involved."""

    rule: str
    nodes: list[str]
    message: str


@dataclass
class QdqReport:
    """What ``check_qdq`` found."""

    model: str
    convs: int = 0
    quantized_convs: int = 0
    quantize_nodes: int = 0
    dequantize_nodes: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        """One line of counts and the verdict, then one line per violation."""
        counts = defaultdict(int)
        for v in self.violations:
            counts[v.rule] += 1
        head = (
            f"{self.model}: {self.quantized_convs}/{self.convs} convs quantized, {self.quantize_nodes} Q, "
            f"{self.dequantize_nodes} DQ: "
            + ("OK" if self.ok else f"{len(self.violations)} violations " + str(dict(sorted(counts.items()))))
        )
        lines = [f"  [{v.rule}] {v.message}" + (f" ({', '.join(v.nodes)})" if v.nodes else "") for v in self.violations]
        return "\n".join([head, *lines])
