"""Text from the user's files made safe to show: in a plot, in a UTF-8 file, in Markdown.

Names come from the file system (run folders, class folders) and from the command line (``--title``).
On POSIX a file name is bytes; Python hands the bytes that are not UTF-8 over as lone surrogates
(``surrogateescape``), which matplotlib cannot draw and a UTF-8 file cannot hold. And a name is text, not
markup: ``<img src=x onerror=alert(1)>`` as a folder name must reach a Markdown renderer as those
characters, never as an HTML element.
"""

from __future__ import annotations

import html

__all__ = ["printable", "markdown_text"]

# Markdown's link and image syntax: a name holding "[x](javascript:...)" must not become a link.
_MARKDOWN_LINK = str.maketrans({"[": "\\[", "]": "\\]"})


def printable(text: object) -> str:
    """``str(text)`` with every byte that was not UTF-8 (a lone surrogate) shown as U+FFFD."""
    text = str(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte stands for
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def markdown_text(text: object) -> str:
    """:func:`printable` text for Markdown: HTML escaped (``<`` -> ``&lt;``, ``&`` -> ``&amp;``...)
    and the square brackets of link syntax backslash-escaped, so the renderer shows it as typed."""
    return html.escape(printable(text), quote=False).translate(_MARKDOWN_LINK)
