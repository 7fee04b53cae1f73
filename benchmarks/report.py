"""Tables of the benchmark report: formatting of figures, markdown files, cached results, plots.

A section of the benchmark (sizes, speed, peers) returns :class:`Table` values: already formatted
cells plus the raw numbers (``data``) that plots and the README headline read. Each table is
cached as JSON beside the markdown (``.cache/<key>.json``) so an interrupted full run resumes
where it stopped (``--resume``), and the markdown files can be rebuilt without measuring again.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MISSING = "—"
QUOTED = "(quoted)"
"""Suffix of every figure taken from a paper rather than measured here."""

CACHE_DIR = ".cache"


# -- figures ------------------------------------------------------------------------------------


def fmt_ratio(value: float | None, digits: int = 2) -> str:
    """``3.14159`` → ``"3.14×"``; None or not finite → :data:`MISSING`."""
    if value is None or not math.isfinite(value) or value <= 0:
        return MISSING
    if value >= 100:
        digits = min(digits, 1)
    return f"{value:.{digits}f}×"


def fmt_range(low: float | None, high: float | None, digits: int = 2) -> str:
    """A measured range of ratios: ``"2.10–2.45×"``, or one figure when both ends round alike."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or low <= 0:
        return MISSING
    low, high = min(low, high), max(low, high)
    a, b = f"{low:.{digits}f}", f"{high:.{digits}f}"
    return f"{a}×" if a == b else f"{a}–{b}×"


def speedup(baseline_seconds: float, seconds: float) -> float:
    """How many times faster than the baseline (baseline time ÷ time); both from the same run."""
    if seconds <= 0 or baseline_seconds <= 0:
        raise ValueError(f"times must be positive, got baseline {baseline_seconds} and {seconds}")
    return baseline_seconds / seconds


def speedup_range(baseline: Timing, timing: Timing) -> tuple[float, float, float]:
    """(median, low, high) speed-up over ``baseline``: the low end pairs the slowest round of the
    engine with the fastest of the baseline, the high end the reverse."""
    return (speedup(baseline.median, timing.median), speedup(baseline.low, timing.high),
            speedup(baseline.high, timing.low))


def fmt_speedup(baseline: Timing, timing: Timing, *, ranges: bool = True) -> str:
    """``"2.31× (2.10–2.45)"``: median speed-up and its range over the timing rounds."""
    median, low, high = speedup_range(baseline, timing)
    if not ranges:
        return fmt_ratio(median)
    span = fmt_range(low, high)
    return fmt_ratio(median) if span == fmt_ratio(median) else f"{fmt_ratio(median)} ({span.rstrip('×')})"


def fmt_bytes(count: float | None) -> str:
    """Bytes with a binary unit, 3 significant figures: ``"1.23 MiB"``."""
    if count is None or not math.isfinite(count):
        return MISSING
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def fmt_seconds(seconds: float | None) -> str:
    """``0.00123`` → ``"1.23 ms"``."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            return f"{seconds / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def fmt_duration(seconds: float) -> str:
    """``754`` → ``"12 min 34 s"``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_percent(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{100 * value:.{digits}f}%"


def quoted(text: str) -> str:
    """A figure from a paper, marked as such."""
    return f"{text} {QUOTED}"


@dataclass(frozen=True)
class Timing:
    """Seconds per run: median and range (fastest, slowest) of the mean over timing rounds."""

    median: float
    low: float
    high: float
    runs: int = 0

    @classmethod
    def from_rounds(cls, rounds: Sequence[float], runs: int = 0) -> Timing:
        ordered = sorted(rounds)
        if not ordered:
            raise ValueError("no timing rounds")
        middle = len(ordered) // 2
        median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        return cls(median, ordered[0], ordered[-1], runs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        return cls(float(data["median"]), float(data["low"]), float(data["high"]), int(data.get("runs", 0)))


# -- tables -------------------------------------------------------------------------------------


@dataclass
class Table:
    """One table of the report: formatted cells, notes below it, raw numbers for plots."""

    key: str
    """Identifier, unique in a run (``sizes-profiles``); also the cache file name."""
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    """How long the table took to measure."""
    context: dict[str, Any] = field(default_factory=dict)
    """Machine state while it was measured (load average before and after)."""

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.key!r}: row has {len(cells)} cells, expected {len(self.columns)}")
        self.rows.append([MISSING if cell is None else str(cell) for cell in cells])

    def markdown(self) -> str:
        """The table as GitHub-flavoured markdown, with its title and notes."""
        def line(cells: Iterable[str]) -> str:
            return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"

        numeric = [all(_looks_numeric(row[i]) for row in self.rows) and bool(self.rows)
                   for i in range(len(self.columns))]
        parts = [f"### {self.title}\n"]
        if self.rows:
            parts.append(line(self.columns))
            parts.append("|" + "|".join("---:" if right else "---" for right in numeric) + "|")
            parts.extend(line(row) for row in self.rows)
            parts.append("")
        else:
            parts.append("(no rows)\n")
        parts.extend(f"- {note}" for note in self.notes)
        load = self.context.get("load")
        if load:
            parts.append(f"- measured in {fmt_duration(self.seconds)}; {load}")
        return "\n".join(parts).rstrip() + "\n"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Table:
        return cls(**data)


_NUMERIC = re.compile(r"^[~<>≈]?[-+]?[\d.,]+(\s?(×|%|B|KiB|MiB|GiB|s|ms|µs))?(\s\(.*\))?\s?[*†]*$")


def _looks_numeric(cell: str) -> bool:
    return cell == MISSING or bool(_NUMERIC.match(cell))


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` through a temporary file and a rename (an interrupted run leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultStore:
    """The output folder: cached tables (JSON), markdown files, plots."""

    def __init__(self, root: Path, run_key: dict[str, Any]) -> None:
        self.root = root
        self.run_key = run_key
        """What a cached table must have been measured with to be reused (mode, options)."""

    def cache_path(self, key: str) -> Path:
        return self.root / CACHE_DIR / f"{key}.json"

    def load(self, key: str) -> list[Table] | None:
        """The cached tables of job ``key``, if measured with the same run key."""
        path = self.cache_path(key)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("run_key") != self.run_key:
            return None
        try:
            return [Table.from_json(table) for table in data["tables"]]
        except (KeyError, TypeError):
            return None

    def save(self, key: str, tables: Sequence[Table]) -> None:
        payload = {"run_key": self.run_key, "tables": [table.to_json() for table in tables]}
        atomic_write(self.cache_path(key), json.dumps(payload, indent=1, default=str))

    def write_markdown(self, name: str, title: str, header: str, tables: Sequence[Table],
                       images: Sequence[tuple[str, str]] = (), intro: Sequence[str] = ()) -> Path:
        """``<root>/<name>.md``: title, machine header, intro lines, images, then the tables."""
        parts = [f"# {title}\n", header]
        if intro:
            parts.append("\n".join(intro) + "\n")
        for caption, image in images:
            parts.append(f"![{caption}]({image})\n")
        parts.extend(table.markdown() for table in tables)
        path = self.root / f"{name}.md"
        atomic_write(path, "\n".join(parts))
        return path


# -- README headline ------------------------------------------------------------------------------

HEADLINE_START = "<!-- benchmarks:headline:start (written by python -m benchmarks --update-readme) -->"
HEADLINE_END = "<!-- benchmarks:headline:end -->"


def replace_headline(readme: str, body: str) -> str:
    """``readme`` with the text between the headline markers replaced by ``body``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = readme.find(HEADLINE_START), readme.find(HEADLINE_END)
    if start < 0 or end < start:
        raise ValueError("README has no headline markers "
                         f"({HEADLINE_START!r} ... {HEADLINE_END!r})")
    return readme[:start + len(HEADLINE_START)] + "\n" + body.strip() + "\n" + readme[end:]
