"""The one exception type every command turns into a single sentence when the estate index cannot be
opened. Kept apart from resource_store (SQLAlchemy, numpy, Qdrant) so the CLI can catch it without
importing them: ``cloudops --version`` stays instant."""

from __future__ import annotations


class IndexUnavailable(RuntimeError):
    """The estate index cannot be opened; the message names the file and the way out."""
