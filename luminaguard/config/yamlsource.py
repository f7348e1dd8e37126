"""Strict YAML reading that keeps a location for every node.

The rules are YAML 1.2's core schema, not PyYAML's YAML 1.1 defaults: only
``true``/``false`` are booleans (``on``, ``no`` and ``yes`` stay strings), no
sexagesimal numbers, no timestamps, no custom tags.  Duplicate keys and merge
keys are refused, and so are non-scalar keys (usually an unquoted template).

Values are built straight from the parser's events in one pass (``_Builder``), with no
node tree. Hostile shapes are refused from those events as each is read, before it is
turned into values: a collection nested deeper than ``MAX_DEPTH`` (the building
recurses; an alias counts as deep as the node it repeats, where it stands), and aliases
that would expand a file (all its documents) by more than ``MAX_ALIAS_NODES`` nodes (a
"billion laughs", or many documents each under the bound). A tag on a collection that
is not its own (``!!set``, ``!!omap``, ``!!python/...``) is a problem, as on a scalar
or a key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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
_SCALAR_TAGS = frozenset({_STR, _NULL, _BOOL, _INT, _FLOAT})
_ScalarEvent = yaml.ScalarEvent

_ParserBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: What YAML counts as a line break.
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
#: Collections nested deeper than this are refused (no real document comes close).
MAX_DEPTH = 100
#: Nodes that aliases may add to one file's documents when expanded, in all.
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
#: First characters of the plain scalars some resolver may give a tag other than str.
_RESOLVED_FIRST = frozenset(c for _, _, first in _IMPLICIT for c in first if c)


def _scalar(tag: str, text: str) -> Any:
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return text.lower() == "true"
    if tag == _INT:
        if text.startswith(("0o", "0x")):
            number = int(text, 0)
            str(number)  # ValueError past Python's digit limit, as a decimal text has
            return number
        return int(text)
    if tag == _FLOAT:
        lowered = text.lower()
        if lowered.endswith("inf"):
            return float("-inf") if lowered.startswith("-") else float("inf")
        if lowered == ".nan":
            return float("nan")
        return float(text)
    return text


def _invalid(text: str, tag: str) -> str:
    """The problem of a scalar its tag cannot read (a long one shortened)."""
    shown = repr(text) if len(text) <= 60 else repr(text[:40]) + f"... ({len(text)} characters)"
    return f"{shown} is not a valid {tag.rsplit(':')[-1]}"


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


class _Refusal(Exception):
    """A document too deep or with aliases too large: the whole file is refused."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


Source = Callable[[], Any]
_KEY_PROBLEM = "a mapping key must be a plain value; if this is a template, quote it: '{{ ... }}'"


class _Builder:
    """Plain values and locations of one file's documents, built from the parser's events.

    One pass, no node tree: each event is checked (``_Shape``) as it is read and turned
    into values at once. An anchored node's events are kept; an alias replays them where
    it stands, so that its values, locations and problems are those the anchored node
    gives there (as converting a composed tree, aliases expanded, did). A node inside
    itself (an alias to an enclosing anchor) is a problem, as before.
    """

    def __init__(self, file: str, loader: Any) -> None:
        self.file = file
        self.loader = loader
        self.shape = _Shape()
        self.index = LocationIndex(root=SourceLocation(file, 1, 1))
        self.diagnostics: list[Diagnostic] = []
        self.anchors: dict[str, list[Any]] = {}  # each anchored node's events
        self.recording: list[list[Any]] = []  # anchored nodes being read from the parser
        self.open: dict[str, Any] = {}  # anchored nodes being read or replayed: their start

    def _read(self) -> Any:
        """The next event from the parser: checked, and kept for every open anchor."""
        event = self.loader.get_event()
        if type(event) is _ScalarEvent and event.anchor is None:
            self.shape.sizes[-1] += 1  # the commonest event: what ``_Shape.problem`` does
        else:
            problem = self.shape.problem(event)
            if problem is not None:
                raise _Refusal(Diagnostic(_mark(self.file, event.start_mark), problem))
        if self.recording:
            for kept in self.recording:
                kept.append(event)
        return event

    def documents(self) -> Iterator[tuple[Any, LocationIndex, list[Diagnostic]]]:
        """Each document's values, locations and problems, read one after the other."""
        self._read()  # the stream's start
        while isinstance(self._read(), yaml.DocumentStartEvent):
            self.shape = self.shape.next_document()
            root = self._read()
            self.index = LocationIndex(root=_mark(self.file, root.start_mark))
            self.diagnostics, self.anchors = [], {}
            data = self._node(self._read, root, (), True)
            self._read()  # the document's end
            yield data, self.index, self.diagnostics

    def error(self, mark: Any, message: str) -> None:
        """Note a problem at ``mark``; the document goes on being read."""
        self.diagnostics.append(Diagnostic(_mark(self.file, mark), message))

    def _node(self, source: Source, event: Any, path: NodePath, build: bool) -> Any:
        """The value of the node ``event`` starts (read only, None, unless ``build``)."""
        if type(event) is _ScalarEvent and event.anchor is None and build:
            start: Any = event.start_mark  # the commonest node: what ``_plain`` does for it
            self.index.values[path] = SourceLocation(self.file, start.line + 1, start.column + 1)
            return self._scalar(event)
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event, path, build)
        anchor = event.anchor
        if anchor is None:
            return self._plain(source, event, path, build)
        if source == self._read:
            self._define(event)
        elif anchor in self.open:  # replayed inside itself
            return self._inside_itself(source, event, path, build)
        self.open[anchor] = event
        try:
            return self._plain(source, event, path, build)
        finally:
            del self.open[anchor]
            if source == self._read:
                self.anchors[anchor] = self.recording.pop()

    def _define(self, event: Any) -> None:
        """Start keeping the events of an anchored node read from the parser."""
        first = self.anchors.get(event.anchor, [self.open.get(event.anchor)])[0]
        if first is not None:
            raise yaml.composer.ComposerError(
                "found duplicate anchor; first occurrence",
                first.start_mark,
                "second occurrence",
                event.start_mark,
            )
        self.recording.append([event])

    def _inside_itself(self, source: Source, event: Any, path: NodePath, build: bool) -> None:
        if build:
            self.index.values[path] = _mark(self.file, event.start_mark)
            self.error(event.start_mark, "an alias refers to a node that contains it")
        self._plain(source, event, path, False)

    def _plain(self, source: Source, event: Any, path: NodePath, build: bool) -> Any:
        if build:
            self.index.values[path] = _mark(self.file, event.start_mark)
        if isinstance(event, yaml.MappingStartEvent):
            return self._mapping(source, path, build and self._own_tag(event, _MAP))
        if isinstance(event, yaml.SequenceStartEvent):
            return self._sequence(source, path, build and self._own_tag(event, _SEQ))
        return self._scalar(event) if build else None

    def _own_tag(self, event: Any, own: str) -> bool:
        """Whether a collection has no tag but its own (else a problem: it is not read)."""
        if event.tag in (None, "!", own):
            return True
        self.error(event.start_mark, f"unsupported YAML tag {event.tag!r}")
        return False

    def _alias(self, event: Any, path: NodePath, build: bool) -> Any:
        """The anchored node's value again, its events replayed here."""
        anchor = event.anchor
        if anchor in self.open:
            if build:
                start = self.open[anchor].start_mark
                self.index.values[path] = _mark(self.file, start)
                self.error(start, "an alias refers to a node that contains it")
            return None
        if anchor not in self.anchors:
            raise yaml.composer.ComposerError(None, None, "found undefined alias", event.start_mark)
        if not build:
            return None
        kept = self.anchors[anchor]
        if len(path) + _depth(kept) > MAX_DEPTH:  # the building recurses as deep
            problem = f"collections are nested more than {MAX_DEPTH} deep (through an alias)"
            raise _Refusal(Diagnostic(_mark(self.file, event.start_mark), problem))
        return self._node(iter(kept[1:]).__next__, kept[0], path, True)

    def _sequence(self, source: Source, path: NodePath, build: bool) -> list[Any] | None:
        items: list[Any] = []
        while not isinstance(event := source(), yaml.SequenceEndEvent):
            items.append(self._node(source, event, (*path, len(items)), build))
        return items if build else None

    def _mapping(self, source: Source, path: NodePath, build: bool) -> dict[str, Any] | None:
        result: dict[str, Any] = {}
        while not isinstance(event := source(), yaml.MappingEndEvent):
            key = self._key(source, event, path, result, build)
            value = self._node(source, source(), (*path, key or ""), build and key is not None)
            if key is not None:
                result[key] = value
        return result if build else None

    def _key(
        self, source: Source, event: Any, path: NodePath, seen: dict[str, Any], build: bool
    ) -> str | None:
        """The key ``event`` starts, or None (and a problem, if ``build``) if it is none."""
        if type(event) is _ScalarEvent and event.anchor is None:  # the commonest key
            return self._scalar_key(event, path, seen) if build else None
        start = event
        if isinstance(event, yaml.AliasEvent):
            anchor = event.anchor or ""
            start = self.open.get(anchor) or self.anchors.get(anchor, [event])[0]
        if start is event and (event.anchor is not None or not isinstance(event, yaml.ScalarEvent)):
            self._node(source, event, path, False)  # read: its anchors, an undefined alias
        if not build:
            return None
        if not isinstance(start, yaml.ScalarEvent):
            self.error(start.start_mark, _KEY_PROBLEM)
            return None
        return self._scalar_key(start, path, seen)

    def _scalar_key(self, event: Any, path: NodePath, seen: dict[str, Any]) -> str | None:
        tag = self._tag(event)
        if tag is _STR and event.value != "<<":  # the commonest key: a string, itself
            return self._new_key(event, event.value, path, seen)
        if tag == "tag:yaml.org,2002:merge" or event.value == "<<":
            self.error(event.start_mark, "merge keys ('<<') are not supported; write the keys")
            return None
        if tag not in _SCALAR_TAGS:  # ``!!binary aGk=: 1`` is not the key ``aGk=``
            self.error(event.start_mark, f"unsupported YAML tag {tag!r}")
            return None
        try:
            key = str(_scalar(tag, event.value))
        except ValueError:  # ``!!int b: 1``
            self.error(event.start_mark, _invalid(event.value, tag))
            return None
        return self._new_key(event, key, path, seen)

    def _new_key(self, event: Any, key: str, path: NodePath, seen: dict[str, Any]) -> str | None:
        """``key``, where ``event`` is; None (a problem) if the mapping has it already."""
        if key in seen:
            first = self.index.keys[(*path, key)]
            self.error(
                event.start_mark, f"duplicate key {key!r} (first defined at line {first.line})"
            )
            return None
        start = event.start_mark
        self.index.keys[(*path, key)] = SourceLocation(self.file, start.line + 1, start.column + 1)
        return key

    def _tag(self, event: Any) -> str:
        """The scalar's tag: its own, or the core schema's for a plain scalar."""
        if event.tag is not None and event.tag != "!":
            return str(event.tag)
        value = event.value
        if not event.implicit[0] or (value and value[0] not in _RESOLVED_FIRST):
            return _STR  # quoted, or no resolver for its first character: a string
        return str(self.loader.resolve(yaml.ScalarNode, value, event.implicit))

    def _scalar(self, event: Any) -> Any:
        tag = self._tag(event)
        if tag is _STR:
            return event.value
        if tag not in _SCALAR_TAGS:
            self.error(event.start_mark, f"unsupported YAML tag {tag!r}")
            return None
        try:
            return _scalar(tag, event.value)
        except ValueError:
            self.error(event.start_mark, _invalid(event.value, tag))
            return None


def _depth(events: list[Any]) -> int:
    """How deep the collections of a node's events nest (0 for a scalar or an alias)."""
    depth = deepest = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return deepest


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
    """Depth of one document and alias expansion of the file so far, event by event."""

    def __init__(self) -> None:
        self.sizes: list[int] = [0]  # nodes of each open collection, expanded
        self.anchors: list[str | None] = [None]
        self.expanded: dict[str, int] = {}
        self.added = 0

    def problem(self, event: yaml.Event) -> str | None:
        """What is wrong with the document once ``event`` is read, if anything."""
        if isinstance(event, yaml.CollectionStartEvent):
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
        elif isinstance(event, yaml.AliasEvent):
            size = self.expanded.get(event.anchor or "", 1)
            self.sizes[-1] += size
            self.added += size
            if self.added > MAX_ALIAS_NODES:
                return f"aliases expand this file beyond {MAX_ALIAS_NODES} nodes"
        return None

    def next_document(self) -> _Shape:
        """The shape of the file's next document: aliases expanded so far still count."""
        shape = _Shape()
        shape.added = self.added
        return shape


def _refused(file: str, text: str) -> Diagnostic | None:
    """The first node of a document too deep or with aliases too large (see module doc)."""
    loader = _CoreSchemaLoader(text)
    try:
        shape = _Shape()
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                shape = shape.next_document()
            problem = shape.problem(event)
            if problem is not None:
                return Diagnostic(_mark(file, event.start_mark), problem)
    except yaml.YAMLError:
        return None  # reported where the documents are composed, after the good ones
    finally:
        loader.dispose()
    return None


def parse_yaml(file: str, text: str) -> tuple[list[RawDocument], list[Diagnostic]]:
    """Parse every document of one file; a syntax error ends the file at that point.

    A document too deep or with aliases too large refuses the whole file (no documents).
    """
    documents: list[RawDocument] = []
    diagnostics: list[Diagnostic] = []
    loader = _CoreSchemaLoader(text)
    try:
        for data, index, problems in _Builder(file, loader).documents():
            diagnostics.extend(problems)
            if data is not None:
                documents.append(RawDocument(file, data, index))
    except _Refusal as refusal:
        return [], [refusal.diagnostic]
    except yaml.composer.ComposerError as exc:
        refused = _refused(file, text)  # a later document refused: the file is, as a whole
        if refused is not None:
            return [], [refused]
        diagnostics.append(_syntax_error(file, text, exc))
    except yaml.MarkedYAMLError as exc:
        diagnostics.append(_syntax_error(file, text, exc))
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        what = (
            f"character {chr(exc.character)!r} is not allowed in YAML"
            if isinstance(exc.character, int)
            else str(exc.reason)
        )
        diagnostics.append(Diagnostic(_position(file, text, exc.position), what))
    finally:
        loader.dispose()
    return documents, diagnostics


def _syntax_error(file: str, text: str, exc: yaml.MarkedYAMLError) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    where = _within(text, _mark(file, mark)) if mark else SourceLocation(file, 1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.context_mark and exc.problem:
        start = _within(text, _mark(file, exc.context_mark))
        problem += f" ({exc.context} at line {start.line}, column {start.column})"
    return Diagnostic(where, f"YAML syntax error: {problem}")


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
