"""The report's block model (supcon.report.document): Markdown with image files, self-contained HTML."""

from __future__ import annotations

import re

from supcon.report.document import Document
from supcon.report.plots import plot_sweep_box


def _document(tmp_path) -> Document:
    image = plot_sweep_box([{"method": "a", "accuracy": 50.0}], tmp_path / "box.png")
    doc = Document("title <1>")
    doc.heading(1, "Section")
    doc.text("plain & text")
    doc.text("careful", note=True)
    doc.table(["name", "value"], [["a|b", 0.123456], ["c", None]])
    doc.images([(image, "The box"), (image, "The box"), (tmp_path / "missing.png", "gone"), (None, "none")])
    doc.code("config", "lr: 0.1\n")
    return doc


def test_markdown_copies_images_and_formats_tables(tmp_path):
    md = _document(tmp_path).markdown(tmp_path / "out" / "report_files")
    assert md.startswith("# title <1>\n\n## Section\n\nplain & text\n\n> careful\n")
    assert "| name | value |\n|---|---|\n| a\\|b | 0.1235 |\n| c | - |\n" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == ["report_files/the_box.png", "report_files/the_box_2.png"]
    for link in links:
        assert (tmp_path / "out" / link).is_file()
    assert "<details><summary>config</summary>\n\n```yaml\nlr: 0.1\n```" in md


def test_html_is_self_contained_and_escaped(tmp_path):
    html = _document(tmp_path).html()
    assert "<title>title &lt;1&gt;</title>" in html and "<h2>Section</h2>" in html
    assert "<p>plain &amp; text</p>" in html and "<p class=\"note\">careful</p>" in html
    assert "<td>a|b</td><td class=\"num\">0.1235</td>" in html
    sources = re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", html)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<details><summary>config</summary><pre>lr: 0.1\n</pre></details>" in html
