"""Safe YAML reading that keeps the line of every key and item, and refuses duplicate keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from .inputfiles import utf8_problem

try:  # the C loader is several times faster and keeps the same marks
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader

Location = tuple[str | int, ...]
MAX_DEPTH = 50  # a record is a few levels deep; this spares the stack of every reader
MERGE_TAG = "tag:yaml.org,2002:merge"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
SCALAR_KINDS = {  # what a value tagged (or read) as each of these must be
    "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false",
    TIMESTAMP_TAG: "a date; write dates like 2025-02-28",
}


class RecordLoader(SafeLoader):
    """YAML 1.2-style scalars: `10:00` stays text, only true/false are booleans."""


RecordLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")
    ]
    for first, resolvers in SafeLoader.yaml_implicit_resolvers.items()
}
RecordLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
RecordLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
RecordLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


class YamlProblem(Exception):
    """The text is not a usable YAML document; carries the 1-based line where known."""

    def __init__(self, message: str, line: int | None = None, location: Location = ()):
        super().__init__(message)
        self.message = message
        self.line = line
        self.location = location


@dataclass
class YamlDocument:
    """Parsed data plus the line where each location (a key path) starts."""

    data: object
    lines: dict[Location, int] = field(default_factory=dict)

    def line_of(self, location: Location) -> int | None:
        return nearest_line(self.lines, location)


def nearest_line(lines: dict[Location, int], location: Location) -> int | None:
    """The line of the location, or of its nearest enclosing location that has one."""
    for end in range(len(location), -1, -1):
        line = lines.get(tuple(location[:end]))
        if line is not None:
            return line
    return None


def decode(raw: bytes) -> str:
    """UTF-8 text, a byte-order mark accepted; other encodings are refused with a line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problem = utf8_problem(raw, error, "")
        raise YamlProblem(problem.message, problem.line) from None


def parse(text: str) -> YamlDocument:
    """One YAML document, with line numbers; raises YamlProblem."""
    loader = RecordLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise YamlProblem("the file is empty", 1)
        lines: dict[Location, int] = {(): _line(root)}
        _index(loader, root, (), lines, set())
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        raise YamlProblem(_describe(error, text, line), line) from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        message = f"character U+{error.character:04X} is not allowed in YAML text; remove it"
        raise YamlProblem(message, line) from None
    except yaml.YAMLError as error:
        raise YamlProblem(f"not valid YAML: {error}") from None
    finally:
        loader.dispose()
    return YamlDocument(data, lines)


def _index(
    loader: RecordLoader, node: yaml.Node, location: Location, lines: dict, seen: set[int]
) -> None:
    """Record the line of every key and item, refusing what records do not use."""
    if id(node) in seen:
        message = "anchors and aliases (*name) are not supported in records"
        raise YamlProblem(message, lines.get(location, _line(node)))
    seen.add(id(node))
    if len(location) > MAX_DEPTH:
        message = f"nested more than {MAX_DEPTH} levels deep; records need only a few levels"
        raise YamlProblem(message, _line(node), location[:1])
    if isinstance(node, yaml.MappingNode):
        keys: dict[object, int] = {}
        for key_node, value_node in node.value:
            _check_key(key_node, keys, location)
            keys[key_node.value] = _line(key_node)
            lines[(*location, key_node.value)] = _line(key_node)
            _index(loader, value_node, (*location, key_node.value), lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*location, index)] = _line(item)
            _index(loader, item, (*location, index), lines, seen)
    else:
        _check_scalar(loader, node, location)


def _check_key(key_node: yaml.Node, keys: dict[object, int], location: Location) -> None:
    if not isinstance(key_node, yaml.ScalarNode):
        raise YamlProblem("keys must be plain names", _line(key_node), location)
    if key_node.tag == MERGE_TAG:
        message = "merge keys (<<) are not supported in records; write the fields out"
        raise YamlProblem(message, _line(key_node), location)
    if key_node.value in keys:
        message = f"duplicate key {key_node.value!r} (first on line {keys[key_node.value]})"
        raise YamlProblem(message, _line(key_node), location)


def _check_scalar(loader: RecordLoader, node: yaml.ScalarNode, location: Location) -> None:
    """Build the value now, so that one YAML cannot make (a date, a number) is located."""
    kind = SCALAR_KINDS.get(node.tag)
    if kind is None:
        loader.construct_object(node)  # kept by the loader for the document
        return
    if node.tag == TIMESTAMP_TAG and not SafeLoader.timestamp_regexp.match(node.value):
        raise YamlProblem(_not_a(kind, node.value), _line(node), location)
    try:
        loader.construct_object(node)
    except ValueError as error:
        reason = str(error)
        if "integer string conversion" in reason:
            digits = sum(character.isdigit() for character in node.value)
            message = f"a number of {digits} digits is too large for any field of a record"
        elif node.tag == TIMESTAMP_TAG:
            message = f"{node.value!r} is not a date on the calendar: {reason}"
        else:
            message = _not_a(kind, node.value)
        raise YamlProblem(message, _line(node), location) from None
    except LookupError:  # `!!bool maybe`
        raise YamlProblem(_not_a(kind, node.value), _line(node), location) from None


def _not_a(kind: str, value: str) -> str:
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"{shown!r} is not {kind}"


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _describe(error: yaml.MarkedYAMLError, text: str, line: int | None) -> str:
    problem = error.problem or "not valid YAML"
    if "could not determine a constructor for the tag" in problem:
        tag = problem.rsplit(" ", 1)[-1].strip("'").replace("tag:yaml.org,2002:", "!!")
        return f"tag {tag} is not allowed in records"
    nearby = "".join(text.splitlines()[max(line or 1, 1) - 1 : (line or 0) + 1])
    if "\t" in nearby and "cannot start any token" in problem:
        return "tab character: indent with spaces, YAML does not allow tabs here"
    if error.context:
        return f"{error.context}, {problem}"
    return problem
