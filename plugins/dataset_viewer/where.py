"""``/filter``'s ``where`` and ``orderby``: parsed into a small grammar, never pasted into SQL.

    where    := or
    or       := and (OR and)*
    and      := not (AND not)*
    not      := NOT not | "(" or ")" | predicate
    predicate:= operand [ compare operand
                        | [NOT] IN "(" literal ("," literal)* ")"
                        | [NOT] LIKE string | [NOT] ILIKE string
                        | [NOT] BETWEEN operand AND operand
                        | IS [NOT] NULL ]      (alone: a boolean column)
    operand  := column | literal
    column   := name | "quoted name"      (a column of the split, checked)
    literal  := 'string' | number | TRUE | FALSE
    compare  := = | == | != | <> | < | <= | > | >=
    orderby  := column [ASC | DESC] [NULLS FIRST | NULLS LAST] ("," ...)*

``compile_where`` answers SQL text built only from the grammar's own keywords and the
split's column names (quoted), with every literal a ``?`` parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .engine import ident

MAX_TEXT = 4096
MAX_DEPTH = 32
MAX_TERMS = 1000
MAX_ORDER = 10
KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL", "BETWEEN", "TRUE", "FALSE", "ASC",
                      "DESC", "NULLS", "FIRST", "LAST"})
COMPARE = {"=": "=", "==": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
  | (?P<op><=|>=|<>|!=|==|=|<|>|\(|\)|,|-)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)


class FilterError(ValueError):
    """The expression does not parse or names an unknown column; the message says where."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokens(text: str) -> list[Token]:
    if len(text) > MAX_TEXT:
        raise FilterError(f"the expression is longer than {MAX_TEXT} characters")
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = m.lastgroup or ""
        if kind != "space":
            value = m.group()
            if kind == "word" and value.upper() in KEYWORDS:
                kind, value = "keyword", value.upper()
            out.append(Token(kind, value, pos))
        pos = m.end()
    if len(out) > MAX_TERMS * 2:
        raise FilterError("the expression is too long")
    return out


class _Parser:
    def __init__(self, text: str, columns: Sequence[str]):
        self.toks = tokens(text)
        self.i = 0
        self.columns = list(columns)
        self.params: list[Any] = []
        self.depth = 0

    # -- tokens --------------------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def at(self, *texts: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind in ("keyword", "op") and tok.text in texts

    def take(self, *texts: str) -> Token:
        tok = self.peek()
        if tok is None or tok.text not in texts or tok.kind not in ("keyword", "op"):
            where = f"at position {tok.pos} ({tok.text!r})" if tok else "at the end"
            raise FilterError(f"expected {' or '.join(texts)} {where}")
        self.i += 1
        return tok

    def done(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise FilterError(f"unexpected {tok.text!r} at position {tok.pos}")

    # -- grammar -------------------------------------------------------------------------------
    def expr(self) -> str:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError("the expression is nested too deeply")
        parts = [self.conj()]
        while self.at("OR"):
            self.i += 1
            parts.append(self.conj())
        self.depth -= 1
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conj(self) -> str:
        parts = [self.neg()]
        while self.at("AND"):
            self.i += 1
            parts.append(self.neg())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def neg(self) -> str:
        if self.at("NOT"):
            self.i += 1
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError("the expression is nested too deeply")
            inner = self.neg()
            self.depth -= 1
            return f"(NOT {inner})"
        if self.at("("):
            self.i += 1
            inner = self.expr()
            self.take(")")
            return inner
        return self.predicate()

    def predicate(self) -> str:
        left = self.operand()
        negate = ""
        if self.at("NOT"):
            self.i += 1
            negate = "NOT "
            if not self.at("IN", "LIKE", "ILIKE", "BETWEEN"):
                raise FilterError("NOT here must be followed by IN, LIKE, ILIKE or BETWEEN")
        tok = self.peek()
        if not negate and (tok is None or self.at("AND", "OR", ")")):
            return left  # a boolean column on its own: "NOT flag", "flag AND x > 1"
        if tok is None:
            raise FilterError("a comparison is missing at the end")
        if tok.kind == "op" and tok.text in COMPARE and not negate:
            self.i += 1
            return f"({left} {COMPARE[tok.text]} {self.operand()})"
        if self.at("IN"):
            self.i += 1
            self.take("(")
            values = [self.literal()]
            while self.at(","):
                self.i += 1
                values.append(self.literal())
                if len(values) > MAX_TERMS:
                    raise FilterError(f"an IN list holds at most {MAX_TERMS} values")
            self.take(")")
            return f"({left} {negate}IN ({', '.join(values)}))"
        if self.at("LIKE", "ILIKE"):
            op = self.take("LIKE", "ILIKE").text
            pattern = self.peek()
            if pattern is None or pattern.kind != "string":
                raise FilterError(f"{op} takes a 'quoted pattern'")
            return f"({left} {negate}{op} {self.literal()})"
        if self.at("BETWEEN"):
            self.i += 1
            low = self.operand()
            self.take("AND")
            return f"({left} {negate}BETWEEN {low} AND {self.operand()})"
        if self.at("IS") and not negate:
            self.i += 1
            is_not = "NOT " if self.at("NOT") else ""
            if is_not:
                self.i += 1
            self.take("NULL")
            return f"({left} IS {is_not}NULL)"
        raise FilterError(f"expected a comparison (=, <, IN, LIKE, IS NULL, ...) at position {tok.pos} "
                          f"({tok.text!r})")

    def operand(self) -> str:
        tok = self.peek()
        if tok is None:
            raise FilterError("an operand is missing at the end")
        if tok.kind in ("word", "quoted"):
            self.i += 1
            return ident(self.column(tok))
        return self.literal()

    def column(self, tok: Token) -> str:
        name = tok.text[1:-1].replace('""', '"') if tok.kind == "quoted" else tok.text
        if name in self.columns:
            return name
        folded = [c for c in self.columns if c.lower() == name.lower()]
        if len(folded) == 1 and tok.kind == "word":
            return folded[0]
        raise FilterError(f"no column {name!r} in this split (columns: {', '.join(self.columns[:20])})")

    def literal(self) -> str:
        tok = self.peek()
        if tok is None:
            raise FilterError("a value is missing at the end")
        negative = False
        if tok.kind == "op" and tok.text == "-":
            self.i += 1
            negative, tok = True, self.peek()
            if tok is None or tok.kind != "number":
                raise FilterError("'-' must be followed by a number")
        self.i += 1
        if tok.kind == "string":
            value: Any = tok.text[1:-1].replace("''", "'")
        elif tok.kind == "number":
            value = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
            value = -value if negative else value
        elif tok.kind == "keyword" and tok.text in ("TRUE", "FALSE"):
            value = tok.text == "TRUE"
        else:
            raise FilterError(f"expected a value ('text', a number, true or false) at position {tok.pos} "
                              f"({tok.text!r})")
        self.params.append(value)
        return "?"

    def orderby(self) -> str:
        items = []
        while True:
            tok = self.peek()
            if tok is None or tok.kind not in ("word", "quoted"):
                raise FilterError("orderby lists columns: col [ASC|DESC] [NULLS FIRST|LAST], ...")
            self.i += 1
            item = ident(self.column(tok))
            if self.at("ASC", "DESC"):
                item += " " + self.take("ASC", "DESC").text
            if self.at("NULLS"):
                self.i += 1
                item += " NULLS " + self.take("FIRST", "LAST").text
            items.append(item)
            if len(items) > MAX_ORDER:
                raise FilterError(f"orderby takes at most {MAX_ORDER} columns")
            if not self.at(","):
                return ", ".join(items)
            self.i += 1


def compile_where(text: str, columns: Sequence[str]) -> tuple[str, list[Any]]:
    """SQL for a ``where`` expression over ``columns``, and its parameters."""
    if not text.strip():
        return "TRUE", []
    parser = _Parser(text, columns)
    sql = parser.expr()
    parser.done()
    return sql, parser.params


def compile_orderby(text: str, columns: Sequence[str]) -> str:
    """SQL for an ``orderby`` list (column names only: no parameters)."""
    if not text.strip():
        return ""
    parser = _Parser(text, columns)
    sql = parser.orderby()
    parser.done()
    return sql
