"""RSQL (FIQL) filters, as the JDS ``filter`` and ``data`` query parameters use them.

Grammar; whitespace may surround any token::

    expression  = conjunction { ("," | "or") conjunction }         OR, binds loosest
    conjunction = primary { (";" | "and") primary }                AND
    primary     = "(" expression ")" | comparison
    comparison  = selector operator argument
    selector    = name { "." name }                                 name = [A-Za-z0-9_-]+
    operator    = "==" | "!=" | "=in=" | "=out=" | "=gt=" | ">" | "=ge=" | ">=" | "=lt=" | "<" | "=le=" | "<="
    argument    = value                                             every operator but =in= and =out=
                | "(" value { "," value } ")"                       =in= and =out=
    value       = unquoted | "'" chars "'" | '"' chars '"'

An unquoted value runs until whitespace, a quote, "(", ")", ";" or ",", and does not start with "=", "!",
"<", ">" or "~"; a backslash in it is an ordinary character. Inside quotes a backslash makes the next
character literal. In ``==`` and ``!=`` values ``*`` matches any run of characters; a quoted ``\\*`` is a
literal star. The words ``and``/``or`` are case-insensitive. Input is capped at MAX_LENGTH characters and
MAX_DEPTH nested parentheses.

Missing fields: a comparison on a missing field (absent key, JSON null, SQL NULL) is false for ``==``,
``=in=`` and the ordering operators, and true for ``!=`` and ``=out=``: ``status!=paid`` also returns the
events that have no status.

``parse`` builds the AST; ``compile_filter`` (columns) and ``compile_data_filter`` (paths into a jsonb
column) turn it into a parenthesised SQL condition whose values are all asyncpg parameters.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "And",
    "Comparison",
    "FieldKind",
    "Node",
    "Or",
    "RsqlError",
    "compile_data_filter",
    "compile_filter",
    "parse",
]

MAX_LENGTH = 4096
MAX_DEPTH = 32


class RsqlError(ValueError):
    """A filter that cannot be parsed or compiled; ``position`` is a 0-based index into the text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Comparison:
    """``selector op values``: ``op`` is canonical (``=gt=``, never ``>``), ``position`` the selector's index.

    ``==`` and ``!=`` hold one pattern: ``*`` is a wildcard and a backslash makes the next character
    literal (a literal star is ``\\*``, a literal backslash ``\\\\``). Other operators hold plain text.
    """

    selector: str
    op: str
    values: tuple[str, ...]
    position: int


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Node = Comparison | And | Or


class FieldKind(enum.Enum):
    TEXT = "text"
    TIME = "time"


_OPERATORS = {
    "==": "==", "!=": "!=", "=in=": "=in=", "=out=": "=out=",
    "=gt=": "=gt=", ">": "=gt=", "=ge=": "=ge=", ">=": "=ge=",
    "=lt=": "=lt=", "<": "=lt=", "=le=": "=le=", "<=": "=le=",
}  # fmt: skip
_OPERATOR_NAMES = ", ".join(_OPERATORS)
_LIST_OPS = frozenset({"=in=", "=out="})
_PATTERN_OPS = frozenset({"==", "!="})
_ORDER_SQL = {"=gt=": ">", "=ge=": ">=", "=lt=": "<", "=le=": "<="}

_FORBIDDEN_RE = re.compile("[\x00\ud800-\udfff]")  # PostgreSQL text cannot hold these
_SELECTOR_CHARS_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_NAME = r"[A-Za-z0-9_\-]+"
_NAME_RE = re.compile(_NAME)
_SELECTOR_RE = re.compile(rf"{_NAME}(\.{_NAME})*")
_NAMES_RULE = "use names of letters, digits, '_' and '-', joined by single dots"
_OPERATOR_RE = re.compile(r"==|!=|=[A-Za-z]*=|[<>]=?")
_UNQUOTED_RE = re.compile(r"""[^\s'"();,=!<>~][^\s'"();,]*""")

# Guards that keep a cast of a jsonb text from ever raising: only strings these match are cast. They are
# written for both Python and PostgreSQL (no backslashes, repeat counts within PostgreSQL's 255).
_NUMBER = r"[+-]?([0-9]{1,100}([.][0-9]{0,100})?|[.][0-9]{1,100})([eE][+-]?[0-9]{1,3})?"
_NUMBER_RE = re.compile(_NUMBER)
_YEAR = "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_DATE = (
    f"({_YEAR}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
    f"|{_LEAP_YEAR}-02-29)"
)
_CLOCK = "[Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?"
_OFFSET = "([Zz]|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)"
_DATETIME = f"{_DATE}({_CLOCK}{_OFFSET}?)?"


def _is_selector_char(ch: str) -> bool:
    return ch != "" and ch.isascii() and (ch.isalnum() or ch in "_-.")


def _join(kind: type[And] | type[Or], nodes: list[Node]) -> Node:
    if len(nodes) == 1:
        return nodes[0]
    flat: list[Node] = []
    for node in nodes:
        flat.extend(node.children if isinstance(node, kind) else (node,))
    return kind(tuple(flat))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, expected: str) -> RsqlError:
        found = self.text[self.pos : self.pos + 1]
        return RsqlError(f"{expected}, found {found!r}" if found else expected, self.pos)

    def skip(self) -> str:
        """Skip whitespace and return the next character ('' at the end)."""
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos : self.pos + 1]

    def connective(self, symbol: str, word: str) -> bool:
        if self.skip() == symbol:
            self.pos += 1
            return True
        end = self.pos + len(word)
        if self.text[self.pos : end].lower() == word and not _is_selector_char(self.text[end : end + 1]):
            self.pos = end
            return True
        return False

    def expression(self) -> Node:
        children = [self.conjunction()]
        while self.connective(",", "or"):
            children.append(self.conjunction())
        return _join(Or, children)

    def conjunction(self) -> Node:
        children = [self.primary()]
        while self.connective(";", "and"):
            children.append(self.primary())
        return _join(And, children)

    def primary(self) -> Node:
        if self.skip() != "(":
            return self.comparison()
        opening = self.pos
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RsqlError(f"parentheses nest deeper than {MAX_DEPTH} levels", opening)
        self.pos += 1
        node = self.expression()
        if self.skip() != ")":
            if self.pos == len(self.text):
                raise RsqlError("unclosed '('", opening)
            raise self.fail("expected ';', ',', 'and', 'or' or ')'")
        self.pos += 1
        self.depth -= 1
        return node

    def comparison(self) -> Comparison:
        start = self.pos
        match = _SELECTOR_CHARS_RE.match(self.text, start)
        if match is None:
            raise self.fail("expected a selector")
        selector = match.group()
        if not _SELECTOR_RE.fullmatch(selector):
            raise RsqlError(f"invalid selector {selector!r}: {_NAMES_RULE}", start)
        self.pos = match.end()
        self.skip()
        match = _OPERATOR_RE.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected an operator such as ==")
        op = _OPERATORS.get(match.group().lower())
        if op is None:
            raise RsqlError(f"unknown operator {match.group()!r}; use one of {_OPERATOR_NAMES}", self.pos)
        self.pos = match.end()
        if op in _LIST_OPS:
            return Comparison(selector, op, self.value_list(match.group()), start)
        if self.skip() == "(":
            raise RsqlError(f"{match.group()} takes one value; only =in= and =out= take a list", self.pos)
        return Comparison(selector, op, (self.value(pattern=op in _PATTERN_OPS),), start)

    def value_list(self, op: str) -> tuple[str, ...]:
        if self.skip() != "(":
            raise self.fail(f"expected a list in parentheses after {op}, such as (a,b)")
        opening = self.pos
        self.pos += 1
        values: list[str] = []
        while True:
            self.skip()
            values.append(self.value(pattern=False))
            ch = self.skip()
            if ch == ",":
                self.pos += 1
            elif ch == ")":
                self.pos += 1
                return tuple(values)
            elif ch == "":
                raise RsqlError("unclosed '('", opening)
            else:
                raise self.fail("expected ',' or ')' in the value list")

    def value(self, pattern: bool) -> str:
        start, text = self.pos, self.text
        quote = text[start : start + 1]
        if quote and quote in "'\"":
            out: list[str] = []
            i = start + 1
            while i < len(text):
                ch = text[i]
                if ch == quote:
                    self.pos = i + 1
                    return "".join(out)
                if ch == "\\" and i + 1 < len(text):
                    i += 1
                    ch = text[i]
                    if pattern and ch in "*\\":
                        out.append("\\")
                out.append(ch)
                i += 1
            raise RsqlError("unterminated quoted value starting", start)
        match = _UNQUOTED_RE.match(text, start)
        if match is None:
            raise self.fail("expected a value")
        self.pos = match.end()
        return match.group().replace("\\", "\\\\") if pattern else match.group()


def parse(text: str) -> Node:
    """Parse an RSQL expression; raise RsqlError with the position of the first problem."""
    if len(text) > MAX_LENGTH:
        raise RsqlError(f"expression is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    if forbidden := _FORBIDDEN_RE.search(text):
        raise RsqlError(f"character {forbidden.group()!r} is not allowed", forbidden.start())
    parser = _Parser(text)
    if parser.skip() == "":
        raise RsqlError("empty expression", 0)
    node = parser.expression()
    ch = parser.skip()
    if ch == ")":
        raise RsqlError("unexpected ')'", parser.pos)
    if ch:
        raise parser.fail("expected ';', ',', 'and', 'or' or the end of the expression")
    return node


def compile_filter(node: Node, fields: Mapping[str, tuple[str, FieldKind]], params: list[object]) -> str:
    """SQL for ``node`` over columns: ``fields`` maps each accepted selector to a trusted SQL expression.

    TEXT expressions must be of type text. Values are appended to ``params`` and referenced as ``$n``.
    """

    def leaf(c: Comparison) -> str:
        try:
            expr, kind = fields[c.selector]
        except KeyError:
            allowed = ", ".join(sorted(fields))
            raise RsqlError(f"unknown field {c.selector!r}; allowed fields: {allowed}", c.position) from None
        if kind is FieldKind.TEXT:
            return _text_comparison(expr, c, params)
        return _compare(expr, c.op, _param(params, _argument(c, lambda v: _time_value(c, v))), "timestamptz")

    return _walk(node, leaf)


def compile_data_filter(node: Node, column: str, params: list[object]) -> str:
    """SQL for ``node`` over the jsonb ``column`` (trusted SQL); selectors are dotted paths into it.

    ``==``, ``!=``, ``=in=`` and ``=out=`` compare the text form (number 5 and string "5" both match
    ``5``, booleans match ``true``/``false``). Ordering operators compare numerically when the value is a
    number, as timestamptz when it is a date-time, else as text; stored values of another shape never match.
    """

    def leaf(c: Comparison) -> str:
        names = c.selector.split(".")
        if not all(_NAME_RE.fullmatch(name) for name in names):
            raise RsqlError(f"invalid data field {c.selector!r}: {_NAMES_RULE}", c.position)
        expr = f"({column} #>> {_param(params, names)}::text[])"
        if c.op not in _ORDER_SQL:
            return _text_comparison(expr, c, params)
        value = c.values[0]
        if _NUMBER_RE.fullmatch(value):
            number = f"CASE WHEN {expr} ~ '^{_NUMBER}$' THEN {expr}::numeric END"
            return _compare(number, c.op, _param(params, Decimal(value)), "numeric")
        if (moment := _parse_time(value)) is not None:
            # A stored date-time without an offset is UTC, as it is for the values in a filter.
            instant = (
                f"CASE WHEN {expr} !~ '^{_DATETIME}$' THEN NULL"
                f" WHEN {expr} ~ '[Tt ].*[Zz+-]' THEN {expr}::timestamptz"
                f" ELSE {expr}::timestamp AT TIME ZONE 'UTC' END"
            )
            return _compare(instant, c.op, _param(params, moment), "timestamptz")
        return _compare(expr, c.op, _param(params, value), "text")

    return _walk(node, leaf)


def _walk(node: Node, leaf: Callable[[Comparison], str]) -> str:
    match node:
        case Comparison():
            if node.op not in _OPERATORS.values():
                raise RsqlError(f"unknown operator {node.op!r}", node.position)
            if not node.values or (node.op not in _LIST_OPS and len(node.values) != 1):
                raise RsqlError(f"wrong number of values for {node.op} on {node.selector!r}", node.position)
            return leaf(node)
        case And():
            return "(" + (" AND ".join(_walk(child, leaf) for child in node.children) or "TRUE") + ")"
        case Or():
            return "(" + (" OR ".join(_walk(child, leaf) for child in node.children) or "FALSE") + ")"


def _param(params: list[object], value: object) -> str:
    params.append(value)
    return f"${len(params)}"


def _argument(c: Comparison, convert: Callable[[str], object]) -> object:
    converted = [convert(value) for value in c.values]
    return converted if c.op in _LIST_OPS else converted[0]


def _compare(expr: str, op: str, ref: str, cast: str) -> str:
    """One comparison, applying the missing-field rule (NULL matches only != and =out=)."""
    if op == "==":
        return f"({expr} = {ref}::{cast})"
    if op == "!=":
        return f"({expr} IS DISTINCT FROM {ref}::{cast})"
    if op == "=in=":
        return f"({expr} = ANY({ref}::{cast}[]))"
    if op == "=out=":
        return f"({expr} IS NULL OR {expr} <> ALL({ref}::{cast}[]))"
    return f"({expr} {_ORDER_SQL[op]} {ref}::{cast})"


def _text_comparison(expr: str, c: Comparison, params: list[object]) -> str:
    if c.op not in _PATTERN_OPS:
        return _compare(expr, c.op, _param(params, _argument(c, str)), "text")
    literal, like = _unpattern(c.values[0])
    if like is None:
        return _compare(expr, c.op, _param(params, literal), "text")
    ref = _param(params, like)
    if c.op == "==":
        return f"({expr} LIKE {ref}::text ESCAPE '\\')"
    return f"({expr} IS NULL OR {expr} NOT LIKE {ref}::text ESCAPE '\\')"


def _unpattern(value: str) -> tuple[str, str | None]:
    """A ``==``/``!=`` pattern as (its literal text, its LIKE pattern or None when it has no wildcard)."""
    literal: list[str] = []
    like: list[str] = []
    wildcard = False
    chars = iter(value)
    for ch in chars:
        if ch == "*":
            wildcard = True
            like.append("%")
            continue
        char = next(chars, "\\") if ch == "\\" else ch
        literal.append(char)
        like.append("\\" + char if char in "\\%_" else char)
    return "".join(literal), "".join(like) if wildcard else None


def _time_value(c: Comparison, value: str) -> datetime:
    if c.op in _PATTERN_OPS:
        value, like = _unpattern(value)
        if like is not None:
            raise RsqlError(f"wildcards are not allowed on time field {c.selector!r}", c.position)
    moment = _parse_time(value)
    if moment is None:
        raise RsqlError(
            f"field {c.selector!r} needs a date-time such as 2024-05-01T10:00:00Z, not {value!r}", c.position
        )
    return moment


def _parse_time(value: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 date-time (a bare date is midnight, no offset is UTC), in UTC."""
    try:
        moment = datetime.fromisoformat(value)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset that moves it out of years 1-9999
        return None
