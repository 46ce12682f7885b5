"""The estate as the rest of the client sees it: the store under ``CLOUDOPS_HOME/index``, the sync
engine over the configured accounts, and the lookup. Opening it does not load the embedding model;
the first sync or semantic search does."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from app.config import Config, load_config
from app.home import cloudops_home
from app.estate.resource_store import ResourceStore


class RemoteEmbedder:
    """Embeddings from the agent server's stateless ``POST /v1/embed`` (when configured)."""

    def __init__(self, server_url: str):
        self.url = server_url.rstrip("/") + "/v1/embed"

    def encode(self, texts: list[str]) -> np.ndarray:
        import httpx

        out = []
        for start in range(0, len(texts), 128):
            reply = httpx.post(self.url, json={"texts": texts[start:start + 128]}, timeout=60)
            reply.raise_for_status()
            out.extend(reply.json()["vectors"])
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


TEAM_QDRANT_ENV = "CLOUDOPS_ESTATE_QDRANT_URL"  # the team path: a Qdrant server that mirrors the estate


class Estate:
    def __init__(self, config: Config | None = None):
        import os

        self.config = config or load_config()
        self.store = ResourceStore(cloudops_home() / "index", qdrant_location=os.environ.get(TEAM_QDRANT_ENV) or None)
        self._lookup = None

    @cached_property
    def sessions(self):
        """Every sync of this process reuses these boto3 sessions and clients (boto3 loads lazily)."""
        from app.awsclient import SessionPool

        return SessionPool()

    @cached_property
    def embedder(self):
        if self.config.embed_via_server and self.config.server_url:
            return RemoteEmbedder(self.config.server_url)
        from agent.embeddings import shared_embedder

        return shared_embedder()

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts)

    def embed_query(self, text: str) -> np.ndarray:
        encode_query = getattr(self.embedder, "encode_query", None)
        return np.asarray(encode_query(text) if encode_query else self.embedder.encode([text])[0], dtype=np.float32)

    def engine(self, max_workers: int = 8):
        from app.estate.sync import SyncEngine

        return SyncEngine(self.store, self.embed, self.config.effective_accounts(), max_workers=max_workers,
                          pool=self.sessions)

    def refresh_after_run(self, plan) -> str | None:
        """Re-read the scopes a plan's steps acted on, so the index shows what the run left (a stopped
        instance reads as stopped, and the next plan is made on that). Returns a note when it could not;
        a failed refresh never turns a run into a failure."""
        from app.estate.collectors import GLOBAL_SERVICES, COLLECTORS
        from app.estate.events import ScopeRef

        by_arn = {r.arn: r for r in plan.identified_resources if r.arn}
        refs = set()
        for step in plan.script.steps:
            for target in step.targets:
                resource = by_arn.get(target) or next((r for r in plan.identified_resources
                                                       if target in (r.resource_id, r.name)), None)
                if resource is None or not resource.account_id:
                    continue
                service = resource.resource_type.split("_")[0]
                for svc in {service, "ec2"} if service == "autoscaling" else {service}:  # ASG runs instances
                    if svc in COLLECTORS:
                        region = "global" if svc in GLOBAL_SERVICES else step.region or resource.region
                        refs.add(ScopeRef(resource.account_id, region, svc))
        if not refs:
            return None
        try:
            report = self.engine().run_events(sorted(refs, key=lambda r: (r.account_id, r.region, r.service)))
        except Exception as exc:  # noqa: BLE001 - the run itself is done; the index catches up at the next sync
            return f"the index was not refreshed after the run ({type(exc).__name__}); the next sync will"
        return None if report.ok else "some scopes were not refreshed after the run; the next sync will"

    def lookup(self):
        """The lookup over the store's shard (one per estate: it holds only small caches, and sees every
        write at once)."""
        from app.estate.lookup import LookupIndex

        if self._lookup is None:
            self._lookup = LookupIndex(self.store, self.embed_query)
        return self._lookup

    def close(self) -> None:
        self.store.close()
