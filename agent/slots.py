"""Values the operator typed into the prompt: a snapshot name, an instance class, a count, a message.

Each playbook parameter declares a kind and cue words ("to", "named"); extraction looks right after a
cue first, then falls back to kind-specific patterns. Resource names that the prompt mentions are
masked first so that "web-server-1" never becomes a count of 1. Every value is validated against the
parameter's pattern, range and choices, exactly like any other user input.

Values are taken whole: a quoted value is everything between its quotes, apostrophes included
(agent.prompt.quoted_values), and an unquoted name is the whole word after its cue (``named foo;rm-rf``,
``named $(whoami)``), which validation then accepts or refuses with the reason. Nothing is cut to the
part that happens to look valid, and a value that was given but refused never becomes a default.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from agent.playbook import ParamSpec
from agent.prompt import Quoted, quoted_values
from agent.text import normalise

_NUMBER = re.compile(r"(?<![\w.-])(\d{1,9})(?![\w.-]|\.\d)")
_RDS_CLASS = re.compile(r"(?<![\w.])(db\.[a-z0-9]+\.[a-z0-9]+)(?!\w|\.\w)")
_EC2_TYPE = re.compile(r"(?<![\w.])([a-z][a-z0-9-]*\d[a-z0-9-]*\.(?:nano|micro|small|medium|large|xlarge|\d+xlarge|metal[a-z0-9-]*))(?!\w|\.\w)")
# A name after its cue: the whole word, whatever it holds (validation decides); sentence punctuation at its end
# is not part of it.
_WHOLE_WORD = r"([^\s§]{1,1024})"
_TRAILING = ".,;:!?"
# Words that introduce a thing without naming it: never taken as an identifier's value.
_DETERMINERS = frozenset({"a", "an", "the", "any", "another", "some", "one", "its", "their", "my", "our", "new"})
_UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_NUMBER_WORDS = re.compile(r"(?<![\w-])(?:(" + "|".join(_TENS) + r")(?:[\s-](" + "|".join(k for k in _UNITS if _UNITS[k] < 10)
                           + r"))?|(" + "|".join(_UNITS) + r")|(a|one)\s+hundred)(?![\w-])")
_DURATION = re.compile(r"(\d{1,6})\s*(s|sec|secs|seconds?|m|mins?|minutes?|h|hours?)\b")


# Words between a cue and its value: "name it X", "call the snapshot X", "set it to 5".
_FILLER = r"(?:(?:it|this|that|them|the\s+(?:new\s+)?(?:snapshot|backup|image|ami|copy))\s+)?(?:(?:as|to)\s+)?"


_NAMING_CUES = ["named", "called", "call", "name", "as"]


class SlotError(ValueError):
    """A value was found but is not acceptable (wrong form, out of range)."""

    def __init__(self, param: str, message: str):
        self.param = param
        super().__init__(message)


@dataclass(frozen=True)
class SlotValue:
    value: object
    source: str  # "prompt" or "default"


def _after_cue(text: str, cues: list[str], value_pattern: str, filler: bool = True) -> re.Match[str] | None:
    for cue in sorted(cues, key=len, reverse=True):
        match = re.search(r"(?<![\w-])" + re.escape(cue.lower()) + r"\s*[:=]?\s+" + (_FILLER if filler else "") + value_pattern, text,
                          flags=re.IGNORECASE)
        if match:
            return match
    return None


def words_to_digits(text: str) -> str:
    """"scale to three" -> "scale to 3", "fifty-five" -> "55"."""
    def value(m: re.Match[str]) -> str:
        if m.group(4):
            return "100"
        if m.group(3):
            return str(_UNITS[m.group(3)])
        return str(_TENS[m.group(1)] + (_UNITS[m.group(2)] if m.group(2) else 0))

    return _NUMBER_WORDS.sub(value, text)


def extract(spec: ParamSpec, prompt: str, masked: str) -> object | None:
    """The raw value for ``spec`` found in the prompt, or None. ``masked`` has the target's own name
    replaced by a sentinel, so it can never be taken for a value."""
    low = normalise(masked)
    kind = spec.kind
    if kind == "token":
        quoted = _quoted_after_cue(prompt, masked, spec.cues)
        if quoted is not None:
            return quoted
        match = _after_cue(masked, spec.cues, r"([^\s\"'`§]{1,1024})", filler=False)
        if match:
            return _original_case(prompt, match.group(1).rstrip(".,;"))
        value = _first_quoted(prompt, masked)
        return value.strip() if value else None
    if kind == "integer":
        low = words_to_digits(low)
        number = r"(\d{1,9})(?![\w.-])"
        match = _after_cue(low, spec.cues, number)
        if match:
            raw = match.group(1)
        else:
            duration = _DURATION.search(low)
            numbers = _NUMBER.findall(low)
            if duration:
                return _seconds(duration)
            if len(numbers) != 1:
                return None  # none, or several with no cue: do not guess
            raw = numbers[0]
        tail = low[match.end():match.end() + 12] if match else ""
        unit = re.match(r"\s*(m|mins?|minutes?|h|hours?)\b", tail)
        if unit:
            return _seconds(re.match(r"(\d+)\s*(\w+)", f"{raw} {unit.group(1)}"))
        return int(raw)
    if kind == "instance_class":
        match = _RDS_CLASS.search(low) or _EC2_TYPE.search(low)
        return match.group(1) if match else None
    if kind == "json":
        start = masked.find("{")
        if start < 0:
            return None
        depth = 0
        for i, ch in enumerate(masked[start:], start):
            depth += ch == "{"
            depth -= ch == "}"
            if depth == 0:
                return masked[start:i + 1]
        return masked[start:]
    if kind == "choice_list":
        chosen = [c for c in spec.choices if re.search(r"(?<![\w-])" + re.escape(c.lower()) + r"(?![\w-])", low)]
        return chosen or None
    if kind == "boolean":
        def said(cues: list[str]) -> bool:
            return any(re.search(r"(?<![\w-])" + re.escape(c.lower()) + r"(?![\w-])", low) for c in cues)
        return True if said(spec.cues) else (False if said(spec.false_cues) else None)
    if kind == "identifier":
        cues = [*spec.cues, *_NAMING_CUES] if "name" in spec.name else spec.cues
        quoted = _quoted_after_cue(prompt, masked, cues)
        if quoted is not None:
            return quoted
        match = _after_cue(masked, cues, _WHOLE_WORD)
        if match and match.group(1).lower() not in _DETERMINERS:  # "fail over to a reader": no name given
            word = match.group(1)
            trimmed = word.rstrip(_TRAILING) or word
            return _original_case(prompt, trimmed)
        value = _first_quoted(prompt, masked)
        return value.strip() if value else None
    # string: the text after its cue (quoted or to the end); a required string also takes a bare
    # quoted text or what follows "<name>:". Optional strings need their cue, so one quoted message
    # does not also become the subject.
    quoted = _quoted_after_cue(prompt, masked, [*spec.cues, spec.name])
    if quoted is not None:
        return quoted
    cued = _after_cue(masked, spec.cues, r"(.{1,1000})$", filler=False)
    if cued:
        return _original_case(prompt, cued.group(1).strip().rstrip("."))
    if not spec.required:
        return None
    value = _first_quoted(prompt, masked)
    if value is not None:
        return value
    colon = re.search(r":\s+(.{1,1000})$", masked)
    return _original_case(prompt, colon.group(1).strip()) if colon else None


def _values(prompt: str, masked: str) -> list[Quoted]:
    """The prompt's quoted values, but not a quoted name of the target itself (``masked`` has it as §)."""
    return [q for q in quoted_values(prompt) if normalise(q.value) in masked]


def _first_quoted(prompt: str, masked: str) -> str | None:
    values = _values(prompt, masked)
    return values[0].value if values else None


def _quoted_after_cue(prompt: str, masked: str, cues: list[str]) -> str | None:
    """A quoted value right after one of ``cues`` ("saying \"db won't start\"", "named 'nightly 1'"), whole."""
    for value in _values(prompt, masked):
        before = prompt[:value.start]
        for cue in sorted(cues, key=len, reverse=True):
            if re.search(r"(?<![\w-])" + re.escape(cue) + r"\s*[:=]?\s*" + _FILLER + r"$", before, flags=re.IGNORECASE):
                return value.value
    return None


def _original_case(prompt: str, value: str) -> str:
    """``value`` was read from the lower-cased prompt: a message is sent as the operator typed it."""
    at = prompt.lower().find(value)
    return prompt[at:at + len(value)] if at >= 0 else value


def _seconds(match: re.Match[str]) -> int:
    value, unit = int(match.group(1)), match.group(2)
    if unit.startswith("h"):
        return value * 3600
    if unit.startswith("m"):
        return value * 60
    return value


def validate(spec: ParamSpec, value: object) -> object:
    """Check a value against the spec; returns the normalised value or raises SlotError."""
    if spec.kind == "integer":
        try:
            number = int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise SlotError(spec.name, f"{spec.name} must be a whole number, got {value!r}") from None
        if spec.minimum is not None and number < spec.minimum:
            raise SlotError(spec.name, f"{spec.name} must be at least {spec.minimum}, got {number}")
        if spec.maximum is not None and number > spec.maximum:
            raise SlotError(spec.name, f"{spec.name} must be at most {spec.maximum}, got {number}")
        return number
    if spec.kind == "json":
        try:
            json.loads(str(value))
        except json.JSONDecodeError as exc:
            raise SlotError(spec.name, f"{spec.name} is not valid JSON: {exc.msg}") from None
        return str(value)
    if spec.kind == "choice_list":
        items = value if isinstance(value, list) else [value]
        bad = [i for i in items if i not in spec.choices]
        if bad:
            raise SlotError(spec.name, f"{spec.name}: {bad} not among {spec.choices}")
        return items
    if spec.kind == "boolean":
        return bool(value)
    text = str(value)
    if spec.choices and text not in spec.choices:
        raise SlotError(spec.name, f"{spec.name} must be one of {spec.choices}")
    if spec.pattern and not re.fullmatch(spec.pattern, text):
        raise SlotError(spec.name, f"{spec.name} {text!r} does not match {spec.pattern}")
    if any(ch in text for ch in "\x00\r\n") and spec.kind != "string":
        raise SlotError(spec.name, f"{spec.name} contains control characters")
    return text


_TOKEN = re.compile(r"(?<![\w.:/-])([A-Za-z0-9][A-Za-z0-9_.:-]*[A-Za-z0-9])(?![\w.:/-])")


def candidates(spec: ParamSpec, masked: str, limit: int = 12) -> list[object]:
    """Every value in the (name-masked) prompt that would pass ``validate`` for ``spec``: the only
    answers the offline model may choose from when the cue patterns found none. Numbers come from
    digits, number words and durations; text values must look like a name (a digit, '-', '_' or '.'
    inside), so plain English words are never offered."""
    text = words_to_digits(masked)
    raw: list[object] = []
    if spec.kind == "integer":
        raw += [_seconds(m) for m in _DURATION.finditer(text)] + [int(m.group(1)) for m in _NUMBER.finditer(text)]
    elif spec.kind in ("string", "identifier", "token"):
        raw += [m.group(1) for m in _TOKEN.finditer(masked) if re.search(r"[\d_.-]", m.group(1))]
    out: list[object] = []
    for value in raw:
        try:
            valid = validate(spec, value)
        except SlotError:
            continue
        if valid not in out:
            out.append(valid)
    return out[:limit]
