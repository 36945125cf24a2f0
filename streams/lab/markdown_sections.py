"""Measured output pasted into Markdown files between markers, so numbers are never typed by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def write_section(path: Path, name: str, body: str, heading: str, title: str) -> None:
    """Replace the section `name` in `path` (created with `title` if missing), or append it under `heading`."""
    begin, end = markers(name)
    section = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else f"# {title}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n{section}\n"
    path.write_text(text)


def publish_report(
    result: dict[str, Any], body: str, json_out: Path | None, write_to: Path | None, *, name: str, heading: str, title: str
) -> None:
    """What every measuring command does with its figures: JSON file, stdout, Markdown section."""
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2))
    click.echo(body)
    if write_to is not None:
        write_section(write_to, name, body, heading=heading, title=title)
