"""Per-layer compression reports: rows, totals, and rich / markdown tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

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


def human_bytes(n: float) -> str:
    """``n`` bytes in at most 3 significant digits and a decimal unit: ``880 B``, ``1.23 kB``,
    ``47.2 MB``."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 999.5 or unit == "TB":
            return f"{n:.3g} {unit}" if n < 100 else f"{n:.0f} {unit}"
    raise AssertionError("unreachable")


def shape_text(shape: Sequence[int]) -> str:
    """``3072×768``; ``scalar`` for ``()``."""
    return "×".join(str(d) for d in shape) or "scalar"


R = TypeVar("R")


@dataclass(frozen=True)
class Column(Generic[R]):
    """One column of a table: how to show a row in it, and when it is shown.

    Adding a column to a table is one :class:`Column` in its list (e.g. :data:`LAYER_COLUMNS`):
    terminal tables show the columns without ``verbose`` by default and all of them with ``-v``
    (split into blocks that fit the width, see :class:`FittedTable`); markdown reports show every
    column with ``markdown`` set.
    """

    header: str
    cell: Callable[[int, R], str]
    """The text of row ``(index, row)``; index counts from 1."""
    numeric: bool = False
    """Right-aligned."""
    verbose: bool = False
    """Shown on a terminal only with ``-v``."""
    key: bool = False
    """Names the row: repeated in every block when a table is split to fit the width."""
    wrap: bool = False
    """May wrap over several lines (names); other columns never wrap."""
    footer: Callable[[Totals], str] | None = None
    markdown: bool = True


def _codec(row: LayerRow) -> str:
    """The codec, with f2f's encoding efficiency: ``f2f E=0.95``."""
    return row.codec if row.encoding_efficiency is None else f"{row.codec} E={row.encoding_efficiency:.2f}"


def _shared(row: LayerRow, text: str) -> str:
    return "shared" if row.shared else text


def _bound_ratio(stored: float, bound: float) -> str:
    return f"{stored / bound:.2f}×" if bound > 0 else "-"


LAYER_COLUMNS: tuple[Column[LayerRow], ...] = (
    Column("#", lambda i, row: str(i), numeric=True, verbose=True, key=True),
    Column("node", lambda i, row: row.node, key=True, wrap=True, footer=lambda t: "total"),
    Column("op", lambda i, row: row.op),
    Column("shape", lambda i, row: shape_text(row.shape)),
    Column("sparsity", lambda i, row: f"{row.sparsity:.1%}", numeric=True),
    Column("codec", lambda i, row: _codec(row)),
    Column(
        "size",
        lambda i, row: _shared(row, human_bytes(row.encoded_bytes)),
        numeric=True,
        footer=lambda t: human_bytes(t.encoded_bytes),
        markdown=False,
    ),
    Column("ratio", lambda i, row: f"{row.ratio:.2f}×", numeric=True, footer=lambda t: f"{t.ratio:.2f}×"),
    Column(
        "bound",
        lambda i, row: _bound_ratio(row.encoded_bytes, row.entropy_bound_bytes),
        numeric=True,
        footer=lambda t: _bound_ratio(t.encoded_bytes, t.entropy_bound_bytes),
    ),
    Column("weight", lambda i, row: row.weight, verbose=True, wrap=True),
    Column("dtype", lambda i, row: row.dtype, verbose=True),
    Column(
        "dense B",
        lambda i, row: f"{row.dense_bytes:,}",
        numeric=True,
        verbose=True,
        footer=lambda t: f"{t.dense_bytes:,}",
    ),
    Column(
        "stored B",
        lambda i, row: _shared(row, f"{row.encoded_bytes:,}"),
        numeric=True,
        verbose=True,
        footer=lambda t: f"{t.encoded_bytes:,}",
    ),
    Column(
        "bound B",
        lambda i, row: f"{row.entropy_bound_bytes:,.0f}",
        numeric=True,
        verbose=True,
        footer=lambda t: f"{t.entropy_bound_bytes:,.0f}",
    ),
)
"""The per-layer table of ``compress``, ``inspect`` and ``demo``. ``size`` is what the weight is
stored in (its blob, or the dense tensor); ``ratio`` is dense ÷ stored; ``bound`` is stored ÷ the
entropy bound (1.00× is the limit no lossless coding beats)."""

LAYER_LEGEND = "ratio: dense ÷ stored; bound: stored ÷ entropy bound (1.00× is the lossless limit)"

MIN_WRAP_WIDTH = 16
"""Narrowest width a wrapping key column (a node name) is squeezed to before a table splits."""
MIN_PREFIX = 8
"""Shortest common prefix of names that a table too wide for the terminal shows once, above it."""


class FittedTable(Generic[R]):
    """A table that fits the width it is printed at (a rich renderable).

    Non-key columns that do not fit beside the key columns go to further blocks, each repeating
    the key columns (as pandas prints wide frames); names wrap instead of being cut, numbers
    never wrap. Printed at an unlimited width (output that is not a terminal), it is one block
    with one line per row.
    """

    def __init__(
        self,
        columns: Sequence[Column[R]],
        rows: Sequence[R],
        *,
        title: str | None = None,
        totals: Totals | None = None,
        verbose: bool = False,
        row_style: Callable[[R], str | None] | None = None,
    ) -> None:
        self.columns = [c for c in columns if verbose or not c.verbose]
        self.rows = list(rows)
        self.title = title
        self.totals = totals
        self.row_style = row_style
        self.cells = [[c.cell(i, row) for c in self.columns] for i, row in enumerate(self.rows, 1)]
        self.footers = (
            [c.footer(totals) if c.footer else "" for c in self.columns] if totals is not None and rows else None
        )

    def natural_width(self, index: int) -> int:
        texts = [self.columns[index].header, *(cells[index] for cells in self.cells)]
        if self.footers:
            texts.append(self.footers[index])
        return max(cell_len(text) for text in texts)

    def blocks(self, width: int) -> list[list[int]]:
        """Column indexes of each block of a table printed ``width`` columns wide."""
        keys = [i for i, c in enumerate(self.columns) if c.key]
        others = [i for i, c in enumerate(self.columns) if not c.key]
        key_width = sum(
            min(self.natural_width(i), MIN_WRAP_WIDTH) if self.columns[i].wrap else self.natural_width(i)
            for i in keys
        ) + _GAP * max(len(keys) - 1, 0)
        blocks: list[list[int]] = []
        current: list[int] = []
        used = key_width
        for i in others:
            need = self.natural_width(i) + (_GAP if keys or current else 0)
            if current and used + need > width:
                blocks.append(current)
                current, used = [], key_width
            current.append(i)
            used += need
        blocks.append(current)
        return [sorted(keys + block) for block in blocks]

    def table(self, indexes: Sequence[int]) -> Table:
        table = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, 1, 0, 0),
            header_style="bold",
            show_footer=self.footers is not None,
        )
        for i in indexes:
            column = self.columns[i]
            table.add_column(
                column.header,
                footer=self.footers[i] if self.footers else "",
                justify="right" if column.numeric else "left",
                no_wrap=not column.wrap,
                overflow="fold" if column.wrap else "ellipsis",
            )
        for row, cells in zip(self.rows, self.cells, strict=True):
            style = self.row_style(row) if self.row_style else None
            table.add_row(*(cells[i] for i in indexes), style=style)
        return table

    def total_width(self) -> int:
        return sum(self.natural_width(i) for i in range(len(self.columns))) + _GAP * (len(self.columns) - 1)

    def _strip_common_prefix(self) -> str:
        """Drop the prefix that every name in the first wrapping key column shares (up to its
        last ``/``, else ``.`` or ``:``), and return it: ``/model/encoder/layer.0/...`` rows then
        wrap less."""
        index = next((i for i, c in enumerate(self.columns) if c.key and c.wrap), None)
        if index is None or len(self.cells) < 2:
            return ""
        names = [cells[index] for cells in self.cells]
        prefix = names[0]
        for name in names[1:]:
            while not name.startswith(prefix):
                prefix = prefix[:-1]
        cut = next((prefix.rfind(sep) + 1 for sep in "/.:" if sep in prefix), 0)
        if cut < MIN_PREFIX or cut >= min(len(name) for name in names):
            return ""
        for cells in self.cells:
            cells[index] = cells[index][cut:]
        return prefix[:cut]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        if self.title:
            yield Text(self.title, style="bold")  # a line of its own: it may be wider than the table
        if self.total_width() > width:
            prefix = self._strip_common_prefix()
            if prefix:
                header = next(c.header for c in self.columns if c.key and c.wrap)
                yield Text(f"({header} names without their common prefix {prefix})", style="dim")
        for number, indexes in enumerate(self.blocks(width)):
            if number:
                yield ""
            yield self.table(indexes)


_GAP = 2
"""Characters between two columns (one of padding and the box's blank vertical)."""


def layer_table(rows: Sequence[LayerRow], title: str | None = None, *, verbose: bool = False) -> FittedTable:
    """The per-layer report for a terminal: :data:`LAYER_COLUMNS`, with a totals footer; dense
    layers dimmed."""
    return FittedTable(
        LAYER_COLUMNS,
        rows,
        title=title,
        totals=totals(rows),
        verbose=verbose,
        row_style=lambda row: "dim" if row.codec == DENSE else None,
    )


def rich_table(rows: Sequence[LayerRow], title: str | None = None) -> FittedTable:
    """The report as a rich renderable with every column (:func:`layer_table` with ``verbose``)."""
    return layer_table(rows, title, verbose=True)


def markdown_table(rows: Sequence[LayerRow], columns: Sequence[Column[LayerRow]] = LAYER_COLUMNS) -> str:
    """The report as a GitHub-flavoured markdown table, totals in the last row."""
    shown = [c for c in columns if c.markdown]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    out = [
        line([c.header for c in shown]),
        "|" + "|".join("---:" if c.numeric else "---" for c in shown) + "|",
    ]
    out.extend(line([c.cell(i, row) for c in shown]) for i, row in enumerate(rows, 1))
    if rows:
        total = totals(rows)
        out.append(line([f"**{c.footer(total)}**" if c.footer else "" for c in shown]))
    return "\n".join(out) + "\n"


def markdown_report(rows: Sequence[LayerRow], title: str, notes: Sequence[str] = ()) -> str:
    """A markdown document: title, table, and notes (e.g. file sizes, declined layers)."""
    parts = [f"# {title}\n", markdown_table(rows)]
    notes = [*notes, LAYER_LEGEND] if rows else list(notes)
    if notes:
        parts.append("\n".join(f"- {note}" for note in notes) + "\n")
    return "\n".join(parts)
