"""One self-contained HTML page for a sweep: its tables and plots, readable with no server.

Everything is inline: the style sheet, the tables, and each plot as a base64 ``data:`` PNG. The
page loads nothing from anywhere and runs no script, so it opens from a cluster's disk, an
e-mail attachment or a CI artifact alike.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_FILE = "report.html"

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr.failed td { color: #a00; }
.holds { color: #070; font-weight: 600; } .fails { color: #a00; font-weight: 600; }
.scroll { overflow-x: auto; }
figure { display: inline-block; margin: 0 1em 1em 0; } figcaption { font-size: 0.9em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
""".strip()


@dataclass
class Table:
    """A titled table; ``text_columns`` are left-aligned (keys, statuses, statements)."""

    title: str
    header: list[str]
    rows: list[list[Any]]
    text_columns: int = 1


def render(
    title: str, tables: Sequence[Table], plots: Sequence[Path], notes: Sequence[str] = ()
) -> str:
    """The page as a string: title, notes, tables, then every plot inline."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    for table in tables:
        parts.append(f"<h2>{html.escape(table.title)}</h2>")
        parts.append(_table(table))
    if plots:
        parts.append("<h2>plots</h2>")
        for path in plots:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            caption = html.escape(path.stem)
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _table(table: Table) -> str:
    def cell(tag: str, index: int, value: Any) -> str:
        kind = ' class="text"' if index < table.text_columns else ""
        text = html.escape(format_cell(value))
        if value in ("holds", "fails"):
            text = f'<span class="{value}">{text}</span>'
        return f"<{tag}{kind}>{text}</{tag}>"

    head = "".join(cell("th", i, name) for i, name in enumerate(table.header))
    body = []
    for row in table.rows:
        failed = ' class="failed"' if "failed" in row or "diverged" in row else ""
        body.append(
            f"<tr{failed}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>"
        )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def format_cell(value: Any) -> str:
    """Numbers to 6 significant digits, missing values empty, the rest as text."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write(
    directory: Path,
    title: str,
    tables: Sequence[Table],
    plots: Sequence[Path],
    notes: Sequence[str] = (),
) -> Path:
    """Write ``<directory>/report.html`` and return its path."""
    path = directory / REPORT_FILE
    path.write_text(render(title, tables, plots, notes), encoding="utf-8")
    return path
