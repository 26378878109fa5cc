"""Writing a benchmark's section of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, name: str, lines: list[str]) -> None:
    """Put ``lines`` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``,
    replacing what was there (or appending the section when it is new)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = "\n".join([start, *lines, end])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
