"""Writing a benchmark's own section of docs/results.md, so that the run that measured the numbers
is the one that records them. Each section sits between two HTML comment markers and is replaced
whole on the next run; everything outside the markers is left as it is.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results.md"


def write_section(name: str, markdown: str, path: Path = RESULTS) -> Path:
    """Replaces (or appends) the section ``name`` of ``path`` with ``markdown``, atomically."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
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
