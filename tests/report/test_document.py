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
    assert md.startswith("# title &lt;1&gt;\n\n## Section\n\nplain &amp; text\n\n> careful\n")
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


ATTACK = "<img src=x onerror=alert(1)>"


def _hostile_document(tmp_path) -> Document:
    """Every kind of text a report writes, holding markup (as run-folder names, class names, --title can)."""
    image = plot_sweep_box([{"method": "a", "accuracy": 50.0}], tmp_path / "box.png")
    doc = Document(ATTACK)
    doc.heading(1, f"run {ATTACK}")
    doc.text(f"Folders: {ATTACK}, [click](javascript:alert(1))")
    doc.text(ATTACK, note=True)
    doc.table([ATTACK, "value"], [[ATTACK, 1.0], ["a|b", "<script>alert(2)</script>"]])
    doc.images([(image, f"{ATTACK}: plot")])
    doc.code(f"config of {ATTACK}", f"dataset: folder:/x\n```\n{ATTACK}\n")
    return doc


def test_markdown_escapes_html_in_every_text(tmp_path):
    md = _hostile_document(tmp_path).markdown(tmp_path / "out" / "report_files")
    outside_code = md.split("````yaml")[0]
    assert "<img" not in outside_code and "<script" not in md and "[click](" not in md
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert md.startswith(f"# {escaped}\n\n## run {escaped}\n\nFolders: {escaped}, \\[click\\](javascript:alert(1))")
    assert f"> {escaped}\n" in md
    assert f"| {escaped} | value |" in md and "| a\\|b | &lt;script&gt;alert(2)&lt;/script&gt; |" in md
    assert f"![{escaped}: plot](report_files/img_src_x_onerror_alert_1_plot.png)" in md
    assert f"<details><summary>config of {escaped}</summary>" in md
    # the code keeps its text verbatim inside a fence its own backticks cannot close
    assert f"````yaml\ndataset: folder:/x\n```\n{ATTACK}\n````" in md


def test_html_escapes_the_same_texts(tmp_path):
    html = _hostile_document(tmp_path).html()
    assert "<img src=x" not in html and "<script>" not in html
    # <title> and <h1>, heading, text, note, two cells, alt and caption, summary and code
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") == 11
    assert re.findall(r"<img[^>]*\ssrc=\"([^\"]{0,22})", html) == ["data:image/png;base64,"]


def test_names_that_were_not_utf8_are_shown_with_a_replacement_character(tmp_path):
    name = b"caf\xff".decode("utf-8", "surrogateescape")
    doc = Document(f"report of {name}")
    doc.heading(1, name)
    doc.table(["run"], [[name]])
    md = doc.markdown(tmp_path / "files")
    (tmp_path / "report.md").write_text(md, encoding="utf-8")
    (tmp_path / "report.html").write_text(doc.html(), encoding="utf-8")
    assert "# report of caf\ufffd" in md and "| caf\ufffd |" in md and "<h2>caf\ufffd</h2>" in doc.html()
