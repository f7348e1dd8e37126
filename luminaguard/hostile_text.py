r"""Showing untrusted text to a person: every control character visible, none obeyed.

Text that comes out of a sandbox (file content in a diff, step outputs and errors,
tool names and descriptions, a VM's console) can hold terminal escape sequences that
clear the screen and draw a fake approval card, a carriage return that overwrites a
line, or Unicode bidi overrides and zero-width characters that make text read other
than it is. ``visible`` is the one function that turns such text into what is shown:
C0 and C1 control characters, DEL, format characters (bidi controls, zero-width
characters, the BOM), line and paragraph separators, surrogates and unassigned code
points are written as Python escapes (ESC as ``\x1b``, U+202E as ``\u202e``); all
other text is left as it is. A multi-line text (a diff) keeps its newlines and tabs;
a one-line text shows a newline as ``\n`` too. The result is safe to print as plain
text; for rich, pass it as a ``rich.text.Text``, never as markup.
"""

from __future__ import annotations

import re
import unicodedata

# characters that may need escaping: the decision is then made by Unicode category
_CANDIDATES = {
    True: re.compile(r"[^\x20-\x7e\n\t]"),
    False: re.compile(r"[^\x20-\x7e\t]"),
}
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Default_Ignorable_Code_Point characters outside those categories (combining graphemes,
#: Mongolian and Khmer fillers, variation selectors, Hangul fillers) and the braille
#: blank: a terminal draws them as nothing or as a blank.
_IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f"
    "\uffa0\U000e0100-\U000e01ef]"
)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    if unicodedata.category(char) not in _INVISIBLE and not _IGNORABLE.match(char):
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: object, *, multiline: bool = False) -> str:
    r"""``text`` (made a string) with every control or invisible character escaped.

    ``multiline`` keeps newlines as newlines (a diff, a report); otherwise they show
    as ``\n``. Tabs stay tabs. Idempotent: its result has nothing left to escape.
    """
    return _CANDIDATES[multiline].sub(_escape, str(text))
