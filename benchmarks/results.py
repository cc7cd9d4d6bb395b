"""Writing a benchmark's own section of docs/results.md, so that the run that measured the numbers
is the one that records them. Each section sits between two HTML comment markers and is replaced
whole on the next run; everything outside the markers is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results.md"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def read_section(name: str, path: Path | None = None) -> str | None:
    """The text between the markers of section ``name`` of ``path`` (default: docs/results.md),
    or None where the file or the section is missing."""
    path = RESULTS if path is None else path
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = _markers(name)
    if start not in text or end not in text:
        return None
    return text.partition(start)[2].partition(end)[0]


def write_section(name: str, markdown: str, path: Path | None = None) -> Path:
    """Replaces (or appends) the section ``name`` of ``path`` (default: docs/results.md, looked up
    at the call, so that a test can point ``RESULTS`` elsewhere) with ``markdown``, atomically."""
    path = RESULTS if path is None else path
    start, end = _markers(name)
    text = path.read_text() if path.exists() else "# Results\n"
    block = f"{start}\n{markdown.strip()}\n{end}"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def mean_sd(values: list[float], digits: int = 1) -> str:
    """A table cell: ``"12.3 ± 4.5"`` (sample sd), ``"12.3"`` for one value, ``"-"`` for none;
    ``digits`` after the point."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def align(rows: list[list[str]]) -> list[str]:
    """Table lines: first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([row[0].ljust(widths[0]), *cells]))
    return lines


def captioned(caption: str, rows: list[list[str]]) -> str:
    """A table's text: the caption line, a blank line and the aligned rows."""
    return "\n".join([caption, "", *align(rows)])


def add_label_argument(parser: argparse.ArgumentParser) -> None:
    """``--label``: a suffix of the docs/results.md section, e.g. the machine, so that the same
    benchmark run on another CPU writes a section of its own instead of replacing this one."""
    parser.add_argument(
        "--label", default="", help="suffix of the docs/results.md section (SECTION-LABEL), "
        "e.g. the machine, so that a run on another CPU does not replace this one's section",
    )  # fmt: skip


def check_label(parser: argparse.ArgumentParser, label: str) -> None:
    """A ``--label`` that cannot be part of a section name is a usage error naming it."""
    if label and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", label):
        parser.error(f"--label {label!r}: use letters, digits, '.', '_' and '-' only")


def labelled(section: str, label: str) -> str:
    """``section`` with ``-label`` appended when there is a label."""
    return f"{section}-{label}" if label else section


def command_line(script: str, argv: list[str] | None) -> str:
    """The shell command that ran ``benchmarks/<script>`` with ``argv`` (None: this process's
    own arguments), quoted so that it can be pasted back."""
    return shlex.join(["python", f"benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)])


def publish(
    report: dict[str, Any],
    text: str,
    *,
    script: str,
    section: str,
    title: str,
    argv: list[str] | None,
    json_path: Path | None,
    results: bool,
) -> None:
    """Prints ``text``; writes the JSON report and/or the docs/results.md section if asked.

    The section holds ``title``, the exact command (``script`` with ``argv``, or the process's
    own arguments) and ``text`` as a code block.
    """
    print(text)
    if results:
        command = command_line(script, argv)
        write_section(section, f"{title}\n\nCommand: `{command}`\n\n```\n{text}\n```")
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2))
