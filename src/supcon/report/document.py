"""A report as a list of blocks, rendered to Markdown (images as files) and to one self-contained HTML file
(inline CSS, images as base64 data URIs, no external assets or links).

Every piece of text (title, headings, paragraphs, table cells, captions, code) may come from the user's
files or command line, so both outputs escape it (:mod:`supcon.report.text`): the HTML with
``html.escape``, the Markdown with HTML escaped too (renderers pass raw HTML through) and code in a
fence longer than any run of backticks inside it. Names that were not UTF-8 show as U+FFFD.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from supcon.report.tables import format_cell, markdown_table
from supcon.report.text import markdown_text, printable

__all__ = ["Document"]

_HTML_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;
color:#1f2328;line-height:1.45;padding:0 16px}
h1{border-bottom:2px solid #d0d7de;padding-bottom:6px}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;
margin-top:32px}h3{margin-top:22px}
table{border-collapse:collapse;margin:10px 0;font-size:13px}th,td{border:1px solid #d0d7de;padding:4px 8px;
text-align:left}th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:10px 10px 10px 0;display:inline-block;vertical-align:top;max-width:calc(50% - 24px)}
figure.wide{max-width:100%}figure img{max-width:100%;border:1px solid #eaeef2}
figcaption{font-size:12px;color:#57606a}pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}
details{margin:6px 0}summary{cursor:pointer;color:#0969da}p.note{color:#9a6700;font-size:13px}
"""


def _png_width(data: bytes) -> int:
    """Pixel width from a PNG's IHDR chunk (0 if the bytes are not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return 0
    return int.from_bytes(data[16:20], "big")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _code_fence(text: str) -> str:
    """A backtick fence longer than every run of backticks in ``text`` (at least three)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _unique_name(caption: str, path: Path, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "_", caption).strip("_").lower()[:60] or "figure"
    name, i = f"{stem}{Path(path).suffix}", 1
    while name in used:
        i += 1
        name = f"{stem}_{i}{Path(path).suffix}"
    used.add(name)
    return name


class Document:
    """A report as blocks: headings, text, notes, tables, images and folded code.

    Table cells are formatted once, when added (:func:`supcon.report.tables.format_cell`), so the
    Markdown and the HTML show the same text. Text is stored :func:`~supcon.report.text.printable`
    and escaped when rendered.
    """

    def __init__(self, title: str) -> None:
        self.title = printable(title)
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", (level, printable(text))))

    def text(self, text: str, note: bool = False) -> None:
        self.blocks.append(("note" if note else "text", printable(text)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", ([printable(h) for h in header],
                                      [[printable(format_cell(v)) for v in row] for row in rows])))

    def images(self, items: Sequence[tuple[Path | None, str]]) -> None:
        """Adds the images that exist (a None or missing path is skipped), each with its caption."""
        present = [(p, printable(c)) for p, c in items if p is not None and Path(p).is_file()]
        if present:
            self.blocks.append(("images", present))

    def code(self, summary: str, text: str) -> None:
        self.blocks.append(("code", (printable(summary), printable(text))))

    def markdown(self, files_dir: Path) -> str:
        """The Markdown text; images are copied into ``files_dir`` and linked relative to its parent."""
        files_dir.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        md = markdown_text
        out = [f"# {md(self.title)}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                out += ["#" * (value[0] + 1) + " " + md(value[1]), ""]
            elif kind in ("text", "note"):
                out += [("> " if kind == "note" else "") + md(value), ""]
            elif kind == "table":
                header, rows = value
                out += [markdown_table([md(h) for h in header], [[md(c) for c in row] for row in rows]), ""]
            elif kind == "images":
                for path, caption in value:
                    name = _unique_name(caption, path, used)
                    shutil.copyfile(path, files_dir / name)
                    out += [f"![{md(caption)}]({files_dir.name}/{name})", f"*{md(caption)}*", ""]
            elif kind == "code":
                summary, text = value
                fence = _code_fence(text)
                out += [f"<details><summary>{html.escape(summary)}</summary>", "", f"{fence}yaml", text.rstrip(),
                        fence, "", "</details>", ""]
        return "\n".join(out)

    def html(self) -> str:
        """One self-contained HTML page: inline CSS, images as base64 data URIs."""
        out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
               f"<title>{html.escape(self.title)}</title><style>{_HTML_CSS}</style></head><body>",
               f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            out += _HTML_BLOCKS[kind](value)
        out.append("</body></html>")
        return "\n".join(out)


def _html_heading(value: tuple[int, str]) -> list[str]:
    level = min(value[0] + 1, 6)
    return [f"<h{level}>{html.escape(value[1])}</h{level}>"]


def _html_table(value: tuple[list[str], list[list[str]]]) -> list[str]:
    esc = html.escape
    header, rows = value
    out = ["<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(
            f"<td class=\"num\">{esc(c)}</td>" if _is_number(c) else f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return out


def _html_images(value: list[tuple[Path, str]]) -> list[str]:
    out = []
    for path, caption in value:
        raw = Path(path).read_bytes()
        data = base64.b64encode(raw).decode("ascii")
        wide = " class=\"wide\"" if _png_width(raw) > 800 else ""
        out.append(f"<figure{wide}><img alt=\"{html.escape(caption)}\" src=\"data:image/png;base64,{data}\">"
                   f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return out


_HTML_BLOCKS = {
    "heading": _html_heading,
    "text": lambda value: [f"<p>{html.escape(value)}</p>"],
    "note": lambda value: [f"<p class=\"note\">{html.escape(value)}</p>"],
    "table": _html_table,
    "images": _html_images,
    "code": lambda value: [f"<details><summary>{html.escape(value[0])}</summary><pre>{html.escape(value[1])}</pre>"
                           "</details>"],
}
