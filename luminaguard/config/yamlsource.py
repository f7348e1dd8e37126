"""Strict YAML reading that keeps a location for every node.

The rules are YAML 1.2's core schema, not PyYAML's YAML 1.1 defaults: only
``true``/``false`` are booleans (``on``, ``no`` and ``yes`` stay strings), no
sexagesimal numbers, no timestamps, no custom tags.  Duplicate keys and merge
keys are refused, and so are non-scalar keys (usually an unquoted template).

Hostile shapes are refused before a node tree is built, from the parser's events: a
collection nested deeper than ``MAX_DEPTH`` (the conversion recurses), and aliases that
would expand a document by more than ``MAX_ALIAS_NODES`` nodes (a "billion laughs").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from luminaguard.config.diagnostics import Diagnostic
from luminaguard.config.location import LocationIndex, NodePath, SourceLocation

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"

_ParserBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: What YAML counts as a line break.
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
#: Collections nested deeper than this are refused (no real document comes close).
MAX_DEPTH = 100
#: Nodes that aliases may add to one document when expanded, in all.
MAX_ALIAS_NODES = 50_000


class _CoreSchemaLoader(_ParserBase):  # type: ignore[misc]
    """PyYAML's fastest parser with the YAML 1.2 core schema resolvers."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}


_IMPLICIT = [
    (_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        _FLOAT,
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
]
for _tag, _pattern, _first in _IMPLICIT:
    _CoreSchemaLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _scalar(tag: str, text: str) -> Any:
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return text.lower() == "true"
    if tag == _INT:
        if text.startswith(("0o", "0x")):
            return int(text, 0)
        return int(text)
    if tag == _FLOAT:
        lowered = text.lower()
        if lowered.endswith("inf"):
            return float("-inf") if lowered.startswith("-") else float("inf")
        if lowered == ".nan":
            return float("nan")
        return float(text)
    return text


def _mark(file: str, mark: Any) -> SourceLocation:
    return SourceLocation(file, mark.line + 1, mark.column + 1)


@dataclass
class RawDocument:
    """One YAML document as plain Python values plus the location of every node."""

    file: str
    data: Any
    locations: LocationIndex

    @property
    def location(self) -> SourceLocation:
        """Where the document starts."""
        return self.locations.root


class _Converter:
    """Turns one composed node tree into plain values, recording locations and problems."""

    def __init__(self, file: str, index: LocationIndex) -> None:
        self.file = file
        self.index = index
        self.diagnostics: list[Diagnostic] = []
        self._active: set[int] = set()

    def error(self, mark: Any, message: str) -> None:
        self.diagnostics.append(Diagnostic(_mark(self.file, mark), message))

    def convert(self, node: yaml.Node, path: NodePath) -> Any:
        self.index.values[path] = _mark(self.file, node.start_mark)
        if id(node) in self._active:
            self.error(node.start_mark, "an alias refers to a node that contains it")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._scalar(node)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag not in (_STR, _NULL, _BOOL, _INT, _FLOAT):
            self.error(node.start_mark, f"unsupported YAML tag {node.tag!r}")
            return None
        try:
            return _scalar(node.tag, node.value)
        except ValueError:
            self.error(node.start_mark, f"{node.value!r} is not a valid {node.tag.rsplit(':')[-1]}")
            return None

    def _mapping(self, node: yaml.MappingNode, path: NodePath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path, result)
            if key is None:
                continue
            self.index.keys[(*path, key)] = _mark(self.file, key_node.start_mark)
            result[key] = self.convert(value_node, (*path, key))
        return result

    def _key(self, key_node: yaml.Node, path: NodePath, seen: dict[str, Any]) -> str | None:
        if not isinstance(key_node, yaml.ScalarNode):
            self.error(
                key_node.start_mark,
                "a mapping key must be a plain value; if this is a template, quote it: '{{ ... }}'",
            )
            return None
        if key_node.tag == "tag:yaml.org,2002:merge" or key_node.value == "<<":
            self.error(key_node.start_mark, "merge keys ('<<') are not supported; write the keys")
            return None
        key = str(_scalar(key_node.tag, key_node.value))
        if key in seen:
            first = self.index.keys[(*path, key)]
            self.error(
                key_node.start_mark, f"duplicate key {key!r} (first defined at line {first.line})"
            )
            return None
        return key


def decode(file: str, data: bytes) -> tuple[str | None, Diagnostic | None]:
    """The text of a file read as UTF-8, or where its first invalid byte is."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")  # valid up to the first bad byte
        where = _at(file, before, len(before))
        return None, Diagnostic(
            where, f"the file is not UTF-8 text: byte {exc.object[exc.start]:#04x}"
        )


class _Shape:
    """Depth and alias expansion of one document, followed event by event."""

    def __init__(self) -> None:
        self.sizes: list[int] = [0]  # nodes of each open collection, expanded
        self.anchors: list[str | None] = [None]
        self.expanded: dict[str, int] = {}
        self.added = 0

    def problem(self, event: yaml.Event) -> str | None:
        """What is wrong with the document once ``event`` is read, if anything."""
        if isinstance(event, yaml.AliasEvent):
            size = self.expanded.get(event.anchor or "", 1)
            self.sizes[-1] += size
            self.added += size
            if self.added > MAX_ALIAS_NODES:
                return f"aliases expand this document beyond {MAX_ALIAS_NODES} nodes"
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(self.sizes) > MAX_DEPTH:
                return f"collections are nested more than {MAX_DEPTH} deep"
            self.sizes.append(1)
            self.anchors.append(event.anchor)
        elif isinstance(event, yaml.CollectionEndEvent):
            size, anchor = self.sizes.pop(), self.anchors.pop()
            self.sizes[-1] += size
            if anchor is not None:
                self.expanded[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            self.sizes[-1] += 1
            if event.anchor is not None:
                self.expanded[event.anchor] = 1
        return None


def _refused(file: str, text: str) -> Diagnostic | None:
    """The first node of a document too deep or with aliases too large (see module doc)."""
    loader = _CoreSchemaLoader(text)
    try:
        shape = _Shape()
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                shape = _Shape()
            problem = shape.problem(event)
            if problem is not None:
                return Diagnostic(_mark(file, event.start_mark), problem)
    except yaml.YAMLError:
        return None  # reported where the documents are composed, after the good ones
    finally:
        loader.dispose()
    return None


def _compose_all(text: str) -> Iterator[yaml.Node]:
    loader = _CoreSchemaLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node
    finally:
        loader.dispose()


def parse_yaml(file: str, text: str) -> tuple[list[RawDocument], list[Diagnostic]]:
    """Parse every document of one file; a syntax error ends the file at that point."""
    documents: list[RawDocument] = []
    diagnostics: list[Diagnostic] = []
    refused = _refused(file, text)
    if refused is not None:
        return documents, [refused]
    try:
        for node in _compose_all(text):
            index = LocationIndex(root=_mark(file, node.start_mark))
            converter = _Converter(file, index)
            data = converter.convert(node, ())
            diagnostics.extend(converter.diagnostics)
            if data is not None:
                documents.append(RawDocument(file, data, index))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _within(text, _mark(file, mark)) if mark else SourceLocation(file, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem:
            start = _within(text, _mark(file, exc.context_mark))
            problem += f" ({exc.context} at line {start.line}, column {start.column})"
        diagnostics.append(Diagnostic(where, f"YAML syntax error: {problem}"))
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        what = (
            f"character {chr(exc.character)!r} is not allowed in YAML"
            if isinstance(exc.character, int)
            else str(exc.reason)
        )
        diagnostics.append(Diagnostic(_position(file, text, exc.position), what))
    return documents, diagnostics


def _within(text: str, where: SourceLocation) -> SourceLocation:
    """``where``, or the end of the last line for libyaml's end of input (a line below it)."""
    lines = text.splitlines(keepends=True)
    if where.line <= len(lines) or (where.line == len(lines) + 1 and text[-1:] in "\n\r"):
        return where  # the last line, or the empty one after a final line break
    last = lines[-1].rstrip("\r\n") if lines else ""
    return SourceLocation(where.file, max(len(lines), 1), len(last) + 1)


def _position(file: str, text: str, offset: int) -> SourceLocation:
    """The line and column of a reader's offset in ``text`` (libyaml counts UTF-8 bytes)."""
    if _ParserBase is not yaml.SafeLoader:
        offset = len(text.encode("utf-8")[:offset].decode("utf-8", "ignore"))
    return _at(file, text, offset)


def _at(file: str, text: str, offset: int) -> SourceLocation:
    """The line and column of a character offset in ``text``, lines as YAML breaks them."""
    breaks = list(_BREAK.finditer(text, 0, offset))
    start = breaks[-1].end() if breaks else 0
    return SourceLocation(file, len(breaks) + 1, offset - start + 1)
