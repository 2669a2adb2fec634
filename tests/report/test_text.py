"""Tests for supcon.report.text: names from the file system and the command line made safe to show."""

from __future__ import annotations

import os

from supcon.report.text import markdown_text, printable


def test_printable_replaces_bytes_that_were_not_utf8():
    assert printable(os.fsdecode(b"caf\xff")) == "caf\ufffd"
    assert printable("caf\u00e9 \u732b") == "caf\u00e9 \u732b"  # valid text is unchanged
    assert printable("lone \ud800 surrogate").startswith("lone ") and "\ud800" not in printable("\ud800")
    assert printable(3.5) == "3.5"
    printable(os.fsdecode(b"\xfe\xff")).encode("utf-8")  # always encodable


def test_markdown_text_escapes_html_and_link_syntax():
    assert markdown_text("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert markdown_text("a & b") == "a &amp; b"
    assert markdown_text("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"
    assert markdown_text('run "1"') == 'run "1"'
