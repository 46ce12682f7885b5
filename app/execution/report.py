"""What a run did, as one typed object that the CLI prints, ``--json`` dumps and the UI draws.

A report says what ran, what did not and the state it left; the response of each call is kept (minus
botocore's ResponseMetadata) so that a describe shows the description and a stop shows the new state.
Responses are cut at MAX_OUTPUT_CHARS of JSON so that a listing of thousands of objects cannot flood a
terminal or a window; the cut is said.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

StepStatus = Literal["succeeded", "failed", "not_run"]
MAX_OUTPUT_CHARS = 200_000
_STREAM_BYTES = 64_000


class StepOutcome(BaseModel):
    step_id: str
    operation: str
    service: str = ""
    targets: list[str] = Field(default_factory=list)
    mutating: bool = False
    status: StepStatus
    aws_request_id: str | None = None
    waited_for: str | None = None
    error: str | None = None
    output: Any = Field(default=None, description="The call's response (JSON-safe), ResponseMetadata removed.")
    output_truncated: bool = False


class ExecutionReport(BaseModel):
    request_id: str | None = None
    plan_hash: str | None
    steps: list[StepOutcome] = Field(default_factory=list)
    index_note: str | None = None

    @property
    def ok(self) -> bool:
        return all(s.status == "succeeded" for s in self.steps)

    @property
    def state_left(self) -> str:
        ran = [s for s in self.steps if s.status == "succeeded"]
        failed = [s for s in self.steps if s.status == "failed"]
        not_run = [s for s in self.steps if s.status == "not_run"]
        if not failed:
            return f"all {len(ran)} steps succeeded"
        parts = [f"{len(ran)} step(s) ran: " + ", ".join(f"{s.step_id} {s.operation} on {', '.join(s.targets)}" for s in ran)
                 if ran else "no step changed anything"]
        parts += [f"{s.step_id} {s.operation} failed: {s.error}" for s in failed]
        if not_run:
            parts.append("not run: " + ", ".join(f"{s.step_id} {s.operation}" for s in not_run))
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        """The wire form: the model plus ``ok`` and ``state_left``."""
        return {**self.model_dump(mode="json"), "ok": self.ok, "state_left": self.state_left}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "read"):  # a streaming body (lambda Invoke's Payload, s3 GetObject's Body)
        data = value.read(_STREAM_BYTES + 1)
        text = data[:_STREAM_BYTES].decode("utf-8", "replace")
        return text + (" … (cut)" if len(data) > _STREAM_BYTES else "")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def output_of(response: dict[str, Any]) -> tuple[Any, bool]:
    """The response as shown to the operator, and whether it was cut."""
    data = _json_safe({k: v for k, v in response.items() if k != "ResponseMetadata"})
    text = json.dumps(data, default=str)
    if len(text) <= MAX_OUTPUT_CHARS:
        return data, False
    return {"truncated_json": text[:MAX_OUTPUT_CHARS]}, True


def render_report(report: ExecutionReport) -> str:
    """The report on a terminal: each step's outcome, then each read's response, then the state left."""
    lines = []
    for s in report.steps:
        lines.append(f"  {s.step_id} {s.operation}: {s.status}" + (f" ({s.error})" if s.error else "")
                     + (f" · AWS request {s.aws_request_id}" if s.aws_request_id else ""))
    for s in report.steps:
        if s.status == "succeeded" and not s.mutating and s.output:
            lines.append(f"--- {s.step_id} {s.operation} response" + (" (cut)" if s.output_truncated else "") + ":")
            lines.append(json.dumps(s.output, indent=2, default=str))
    lines.append(report.state_left)
    if report.index_note:
        lines.append(report.index_note)
    return "\n".join(lines)
