"""Per-layer compression reports: rows, totals, and rich / markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

DENSE = "(dense)"
"""The codec column of a layer whose weight stays an ordinary dense initializer (not encoded)."""


@dataclass(frozen=True)
class LayerRow:
    """One layer (a node with a constant weight) and how its weight is stored."""

    node: str
    op: str
    weight: str
    shape: tuple[int, ...]
    dtype: str
    sparsity: float
    codec: str
    """The codec of the weight's blob, or :data:`DENSE` when the weight stays dense."""
    dense_bytes: int
    encoded_bytes: int
    """Bytes of the blob, or ``dense_bytes`` when the weight stays dense."""
    entropy_bound_bytes: float
    shared: bool = False
    """The weight is shared with an earlier row (and counted there in totals)."""
    note: str = ""
    encoding_efficiency: float | None = None
    """f2f's E (care bits ÷ stored value bits; 1.0 is the entropy limit), shown after the codec."""

    @property
    def ratio(self) -> float:
        """Dense bytes ÷ encoded bytes."""
        return self.dense_bytes / self.encoded_bytes if self.encoded_bytes else 1.0


@dataclass(frozen=True)
class Totals:
    """Sums over the distinct weights of a report."""

    layers: int
    encoded_layers: int
    dense_bytes: int
    encoded_bytes: int
    entropy_bound_bytes: float

    @property
    def ratio(self) -> float:
        return self.dense_bytes / self.encoded_bytes if self.encoded_bytes else 1.0


def totals(rows: Sequence[LayerRow]) -> Totals:
    """Totals over ``rows``, counting each shared weight once."""
    unique = [row for row in rows if not row.shared]
    return Totals(
        layers=len(rows),
        encoded_layers=sum(row.codec != DENSE for row in rows),
        dense_bytes=sum(row.dense_bytes for row in unique),
        encoded_bytes=sum(row.encoded_bytes for row in unique),
        entropy_bound_bytes=sum(row.entropy_bound_bytes for row in unique),
    )


_HEADERS = (
    "#",
    "node",
    "op",
    "shape",
    "sparsity",
    "codec",
    "dense B",
    "encoded B",
    "ratio",
    "entropy bound B",
)


def _cells(index: int, row: LayerRow) -> tuple[str, ...]:
    encoded = f"{row.encoded_bytes:,}" + (" (shared)" if row.shared else "")
    return (
        str(index),
        row.node,
        row.op,
        "×".join(str(d) for d in row.shape) or "scalar",
        f"{row.sparsity:.1%}",
        row.codec if row.encoding_efficiency is None else f"{row.codec} E={row.encoding_efficiency:.2f}",
        f"{row.dense_bytes:,}",
        encoded,
        f"{row.ratio:.2f}×",
        f"{row.entropy_bound_bytes:,.0f}",
    )


def _total_cells(total: Totals) -> tuple[str, ...]:
    return (
        "",
        f"total ({total.encoded_layers}/{total.layers} encoded)",
        "",
        "",
        "",
        "",
        f"{total.dense_bytes:,}",
        f"{total.encoded_bytes:,}",
        f"{total.ratio:.2f}×",
        f"{total.entropy_bound_bytes:,.0f}",
    )


def rich_table(rows: Sequence[LayerRow], title: str | None = None) -> Table:
    """The report as a rich table, with a totals footer."""
    table = Table(title=title, show_footer=bool(rows), header_style="bold")
    total = _total_cells(totals(rows))
    for i, header in enumerate(_HEADERS):
        numeric = header in ("#", "sparsity", "dense B", "encoded B", "ratio", "entropy bound B")
        table.add_column(
            header,
            footer=total[i],
            justify="right" if numeric else "left",
            overflow="fold" if header == "node" else "ellipsis",
            no_wrap=header != "node",
        )
    for index, row in enumerate(rows, 1):
        style = "dim" if row.codec == DENSE else None
        table.add_row(*_cells(index, row), style=style)
    return table


def markdown_table(rows: Sequence[LayerRow]) -> str:
    """The report as a GitHub-flavoured markdown table, totals in the last row."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    numeric = {0, 4, 6, 7, 8, 9}
    out = [
        line(_HEADERS),
        "|" + "|".join("---:" if i in numeric else "---" for i in range(len(_HEADERS))) + "|",
    ]
    out.extend(line(_cells(i, row)) for i, row in enumerate(rows, 1))
    if rows:
        out.append(line([f"**{c}**" if c else "" for c in _total_cells(totals(rows))]))
    return "\n".join(out) + "\n"


def markdown_report(rows: Sequence[LayerRow], title: str, notes: Sequence[str] = ()) -> str:
    """A markdown document: title, table, and notes (e.g. file sizes, declined layers)."""
    parts = [f"# {title}\n", markdown_table(rows)]
    if notes:
        parts.append("\n".join(f"- {note}" for note in notes) + "\n")
    return "\n".join(parts)
