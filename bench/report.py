"""Render every bench/results/*.json into bench/RESULTS.md (the page the README links)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def flatten(prefix: str, value, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(f"{prefix}.{key}" if prefix else key, inner, rows)
    else:
        rows.append((prefix, str(value)))


def main() -> None:
    lines = ["# Benchmark results", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from `bench/results/*.json` "
             "(re-run a benchmark, then `python bench/report.py`). Medians unless a name says p95; every "
             "ratio is against a baseline measured in the same run.", ""]
    for path in sorted((HERE / "results").glob("*.json")):
        rows: list[tuple[str, str]] = []
        flatten("", json.loads(path.read_text()), rows)
        lines += [f"## {path.stem}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in rows]
        lines.append("")
    (HERE / "RESULTS.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
