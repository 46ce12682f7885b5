"""The lookup evaluation: blind queries over the evaluation estates, top-1 accuracy per query kind.

The estates (tests/eval*/estate.yaml) are lists of identified resources; they are turned into
documents, embedded with the real model (their dense text, as a sync embeds it) and stored in a real
ResourceStore (a Qdrant Edge shard), so the whole lookup path runs exactly as after a sync.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from app.estate.documents import ResourceDocument, dense_text, make_document
from app.estate.lookup import LookupIndex
from app.estate.resource_store import ResourceStore


def documents_from_estate(path: Path) -> tuple[list[ResourceDocument], dict[str, str]]:
    """Documents for every resource of an estate file, and key -> document id."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    docs, keys = [], {}
    for r in data["resources"]:
        arn = r.get("arn") or (f"arn:aws:{r['resource_type']}:{r.get('region', '')}:{r.get('account_id', '')}:"
                               f"{r['resource_id']}")
        attributes = dict(r.get("attributes") or {})
        if r.get("engine"):
            attributes["engine"] = r["engine"]
        if r.get("multi_az") is not None:
            attributes["multi_az"] = r["multi_az"]
        doc = make_document(resource_type=r["resource_type"], arn=arn, resource_id=r["resource_id"], name=r.get("name"),
                            account_id=r.get("account_id", "000000000000"), account_name=r.get("account_name", "default"),
                            region=r.get("region", "us-east-1"), state=r.get("current_state"), tags=r.get("tags"),
                            attributes=attributes, relations=r.get("relations"), constraints=r.get("constraints"))
        docs.append(doc)
        keys[r["key"]] = doc.id
    return docs, keys


def build_index(estate: Path, directory: Path, embedder) -> tuple[LookupIndex, ResourceStore, dict[str, str]]:
    docs, keys = documents_from_estate(estate)
    store = ResourceStore(directory)
    by_scope: dict[str, list[ResourceDocument]] = defaultdict(list)
    for doc in docs:
        by_scope[f"{doc.account_id}/{doc.region}/{doc.service}"].append(doc)
    vectors = dict(zip([d.id for d in docs], embedder.encode([dense_text(d) for d in docs])))
    for scope, scoped in by_scope.items():
        store.apply_scope(scope, scoped, vectors)
    encode_query = getattr(embedder, "encode_query", None) or (lambda t: embedder.encode([t])[0])
    return LookupIndex.load(store, encode_query), store, keys


@dataclass
class LookupReport:
    rows: list[tuple[str, str, str, bool, str]] = field(default_factory=list)  # id, kind, query, ok, got

    @property
    def accuracy(self) -> float:
        return sum(r[3] for r in self.rows) / len(self.rows) if self.rows else 0.0

    def summary(self) -> str:
        kinds: dict[str, list[bool]] = defaultdict(list)
        for _, kind, _, ok, _ in self.rows:
            kinds[kind].append(ok)
        lines = [f"lookup eval: top-1 {sum(r[3] for r in self.rows)}/{len(self.rows)} ({self.accuracy:.1%})"]
        lines += [f"  {k:<9} {sum(v)}/{len(v)}" for k, v in sorted(kinds.items())]
        lines += [f"  FAIL {i} [{k}] {q!r} -> {got}" for i, k, q, ok, got in self.rows if not ok]
        return "\n".join(lines)


def run(queries_file: Path, estates: dict[str, Path], workdir: Path, embedder) -> LookupReport:
    queries = yaml.safe_load(queries_file.read_text(encoding="utf-8"))
    report = LookupReport()
    for name, estate in estates.items():
        index, store, keys = build_index(estate, workdir / name, embedder)
        names = {v: k for k, v in keys.items()}
        for q in (q for q in queries if q["estate"] == name):
            hits = index.search(q["query"], limit=5, account=q.get("account"), resource_type=q.get("resource_type"))
            got = names.get(hits[0].id, hits[0].id) if hits else None
            # An empty ``expect`` says the estate holds no answer: the only right result is no hit.
            ok = got is None if not q["expect"] else got in set(q["expect"])
            report.rows.append((q["id"], q.get("type", "?"), q["query"], ok, str(got)))
        store.close()
    return report
