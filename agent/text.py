"""Tokenising and normalising operator text, shared by lexical retrieval and the verb lexicon."""

from __future__ import annotations

import re
import unicodedata
import zlib
from functools import lru_cache

_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an the of for to in on at my our this that these those it its and or please can you i "
                  "me we us is are be with from by".split())


def normalise(text: str) -> str:
    """NFKC-fold (so full-width and compatibility forms become ASCII where they can) and lowercase."""
    return unicodedata.normalize("NFKC", text).lower()


def fold_accents(text: str) -> str:
    """Each accented letter as its base letter, one character for one ("são paulo" -> "sao paulo"), so that
    spans found in the folded text are spans of ``text``."""
    return "".join(unicodedata.normalize("NFKD", ch)[0] if ord(ch) > 127 else ch for ch in text)


@lru_cache(maxsize=65536)
def stem(token: str) -> str:
    """A tiny suffix stripper: enough to make 'instances'/'instance' and 'stopping'/'stop' meet. Cached: the
    catalogue's 1,771 texts repeat the same few thousand words."""
    for suffix, keep in (("ing", 4), ("ies", 3), ("es", 4), ("ed", 4), ("s", 3)):
        if token.endswith(suffix) and len(token) - len(suffix) >= keep:
            base = token[: -len(suffix)]
            if suffix == "ies":
                return base + "y"
            if suffix in ("ing", "ed") and len(base) > 2 and base[-1] == base[-2]:
                base = base[:-1]  # stopping -> stopp -> stop
            return base
    return token


def tokens(text: str, *, keep_stopwords: bool = False) -> list[str]:
    words = _TOKEN.findall(normalise(text))
    return [stem(w) for w in words if keep_stopwords or w not in _STOP]


def token_id(token: str) -> int:
    """A stable sparse-vector index for a token (crc32: the same in every process and release)."""
    return zlib.crc32(token.encode("utf-8"))


def sparse_counts(text: str, dimension: int | None = None) -> dict[int, float]:
    """Token counts keyed by token id, folded into ``dimension`` buckets when one is given."""
    counts: dict[int, float] = {}
    for tok in tokens(text):
        idx = token_id(tok) if dimension is None else token_id(tok) % dimension
        counts[idx] = counts.get(idx, 0.0) + 1.0
    return counts


# A region name inside free text ("in us-east-1", "eu-west-2"), not inside a longer word.
REGION_IN_TEXT = re.compile(r"(?<![a-z0-9-])([a-z]{2}(?:-gov)?-(?:north|south|east|west|central|northeast|southeast|"
                            r"northwest|southwest)-\d)(?![a-z0-9-])")


def last_segment(identifier: str) -> str:
    """The name at the end of an ARN or URL: a queue URL's queue, a topic ARN's topic."""
    return re.split(r"[/:]", identifier.rstrip("/"))[-1] if identifier else ""


# Words whose final s is not a plural's.
_KEEP_S = frozenset({"access", "address", "alias", "analysis", "analytics", "aws", "continuous", "cors", "dns", "ebs",
                     "egress", "eks", "express", "ingress", "is", "kinesis", "kms", "process", "progress", "serverless",
                     "sms", "status", "success", "class", "this", "was", "has", "its", "us", "less", "bus", "gas",
                     "plus", "cross", "loss", "pass", "glass", "ecs", "iam", "sqs", "sns", "rds", "s3", "dynamodb",
                     "os", "yes", "always", "series", "canvas", "atlas"})


def singular(word: str) -> str:
    """'instances' -> 'instance', 'policies' -> 'policy', 'addresses' -> 'address', 'aliases' -> 'alias'."""
    if len(word) <= 2 or word in _KEEP_S or not word.endswith("s"):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ases") and word[:-2] in _KEEP_S:
        return word[:-2]
    if word.endswith(("xes", "ches", "shes")):
        return word[:-2]
    if word.endswith(("ss", "us")):
        return word
    return word[:-1]
