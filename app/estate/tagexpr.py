"""Tag expressions in search queries: ``env=prod AND app=main``, ``team=data OR team=ml``,
``NOT env=dev``, ``env!=prod``, parentheses. Values compare case-insensitively and through common
abbreviations (prod = production = prd, pg = postgres), and ``key=*`` means "has the tag".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SYNONYMS = [
    {"prod", "production", "prd", "live"},
    {"stg", "stage", "staging", "preprod"},
    {"dev", "development", "develop", "sandbox"},
    {"qa", "test", "testing"},
    {"pg", "postgres", "postgresql"},
]
_CANON = {word: min(group) for group in SYNONYMS for word in group}
SYNONYM_WORDS = frozenset(_CANON)  # values that match others than themselves
_TERM = re.compile(r"([A-Za-z0-9_.:/@+-]+)\s*(!=|=)\s*([A-Za-z0-9_.:/@+*-]+|\"[^\"]*\"|'[^']*')")
_TOKEN = re.compile(r"\(|\)|\bAND\b|\bOR\b|\bNOT\b|&&|\|\||!(?!=)|" + _TERM.pattern, re.IGNORECASE)


class TagExprError(ValueError):
    pass


def canon(value: str) -> str:
    low = value.strip().strip("'\"").lower()
    return _CANON.get(low, low)


@dataclass(frozen=True)
class Term:
    key: str
    value: str
    negated: bool

    def matches(self, tags: dict[str, str]) -> bool:
        lowered = {k.lower(): v for k, v in tags.items()}
        actual = lowered.get(self.key.lower())
        if self.value == "*":
            hit = actual is not None
        else:
            hit = actual is not None and canon(actual) == canon(self.value)
        return hit != self.negated


@dataclass(frozen=True)
class Node:
    op: str  # "and", "or", "not", "term"
    children: tuple["Node", ...] = ()
    term: Term | None = None

    def matches(self, tags: dict[str, str]) -> bool:
        if self.op == "term":
            return self.term.matches(tags)  # type: ignore[union-attr]
        if self.op == "not":
            return not self.children[0].matches(tags)
        if self.op == "and":
            return all(c.matches(tags) for c in self.children)
        return any(c.matches(tags) for c in self.children)

    def terms(self) -> list[Term]:
        if self.op == "term":
            return [self.term]  # type: ignore[list-item]
        return [t for c in self.children for t in c.terms()]


def split_query(query: str) -> tuple[Node | None, str]:
    """The tag expression found in ``query`` (or None) and the free text left around it."""
    if not _TERM.search(query):
        return None, query
    # The expression is the span from the first to the last tag term, with its connectives.
    spans = [m.span() for m in _TERM.finditer(query)]
    start, end = spans[0][0], spans[-1][1]
    while start > 0 and query[start - 1] in "( \t":
        start -= 1
    while start > 0 and re.search(r"(\bNOT|!)\s*$", query[:start], re.IGNORECASE):
        start = re.search(r"(\bNOT|!)\s*$", query[:start], re.IGNORECASE).start()
    while end < len(query) and query[end] in ") \t":
        end += 1
    expression = query[start:end].strip()
    return parse(expression), (query[:start] + " " + query[end:]).strip()


def parse(expression: str) -> Node:
    tokens = [m.group(0) for m in _TOKEN.finditer(expression)]
    leftover = _TOKEN.sub(" ", expression).strip()
    if leftover:
        raise TagExprError(f"cannot read {leftover!r} in tag expression {expression!r}")
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def parse_or() -> Node:
        nodes = [parse_and()]
        while (p := peek()) and p.upper() in ("OR", "||"):
            take()
            nodes.append(parse_and())
        return nodes[0] if len(nodes) == 1 else Node("or", tuple(nodes))

    def parse_and() -> Node:
        nodes = [parse_not()]
        while (p := peek()) and (p.upper() in ("AND", "&&") or p == "(" or _TERM.fullmatch(p) or p.upper() == "NOT"):
            if p.upper() in ("AND", "&&"):
                take()
            nodes.append(parse_not())  # juxtaposition means AND: "env=prod app=main"
        return nodes[0] if len(nodes) == 1 else Node("and", tuple(nodes))

    def parse_not() -> Node:
        p = peek()
        if p is not None and p.upper() in ("NOT", "!"):
            take()
            return Node("not", (parse_not(),))
        return parse_atom()

    def parse_atom() -> Node:
        p = peek()
        if p is None:
            raise TagExprError(f"tag expression {expression!r} ends too early")
        if p == "(":
            take()
            node = parse_or()
            if peek() != ")":
                raise TagExprError(f"missing ')' in {expression!r}")
            take()
            return node
        match = _TERM.fullmatch(take())
        if not match:
            raise TagExprError(f"expected key=value in {expression!r}, got {p!r}")
        key, op, value = match.groups()
        return Node("term", term=Term(key, value.strip("'\""), negated=(op == "!=")))

    node = parse_or()
    if pos != len(tokens):
        raise TagExprError(f"unexpected {tokens[pos]!r} in {expression!r}")
    return node
