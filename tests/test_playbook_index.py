"""The playbook index re-embeds only what changed, keeps metadata in SQLite and filters by service."""

from __future__ import annotations

import shutil


from agent.playbook import load_playbooks
from agent.playbook_index import PlaybookIndex
from conftest import PLAYBOOKS, CountingEmbedder


def test_reindex_only_what_changed(tmp_path):
    from agent.embeddings import shared_embedder

    books = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, books)
    embedder = CountingEmbedder(shared_embedder())
    index = PlaybookIndex.at(tmp_path / "cache", embedder)
    first = index.sync(load_playbooks(books))
    assert len(first.added) == len(list(books.glob("*.yaml"))) and first.embedded_texts == embedder.texts
    index.close()

    again = PlaybookIndex.at(tmp_path / "cache", embedder)
    before = embedder.texts
    stats = again.sync(load_playbooks(books))
    assert stats.unchanged == len(first.added) and embedder.texts == before  # nothing re-embedded

    target = books / "aws_rds_stop_instance.yaml"
    target.write_text(target.read_text().replace("  - stop the database\n", "  - stop the database\n  - park the db\n"))
    (books / "aws_sns_get_topic_attributes.yaml").unlink()
    stats = again.sync(load_playbooks(books))
    assert stats.updated == ["aws_rds_stop_instance"] and stats.removed == ["aws_sns_get_topic_attributes"]
    pb = next(lp.playbook for lp in load_playbooks(books) if lp.playbook.id == "aws_rds_stop_instance")
    assert embedder.texts - before == 1 + len(pb.utterances)  # only the changed playbook's texts

    records = {r.id: r for r in again.records()}
    assert "aws_sns_get_topic_attributes" not in records
    assert len(records["aws_rds_stop_instance"].content_hash) == 64 and records["aws_rds_stop_instance"].service == "rds"
    hits = again.search("stop the database", services=["ec2"])
    assert hits and all(h.playbook_id.startswith("aws_ec2_") for h in hits)
    assert again.search("park the db")[0].playbook_id == "aws_rds_stop_instance"
    again.close()


def test_numpy_and_qdrant_collections_answer_alike():
    """The default numpy collection and Qdrant give the same best playbooks and the same scores."""
    from agent.embeddings import shared_embedder

    playbooks = load_playbooks(PLAYBOOKS)
    ours = PlaybookIndex(shared_embedder())
    qdrant = PlaybookIndex(shared_embedder(), qdrant_location=":memory:")
    ours.sync(playbooks)
    qdrant.sync(playbooks)
    queries = ["stop pg-instance-main1", "purge the payments queue", "scale the web asg to 4 instances",
               "what is the status of the core-network stack", "reboot", "invoke image-resizer with a payload"]
    for query in queries:
        for kwargs in ({}, {"services": ["rds", "ec2"]}, {"system": "aws"}):
            a, b = ours.search(query, limit=20, **kwargs), qdrant.search(query, limit=20, **kwargs)
            assert [h.playbook_id for h in a[:5]] == [h.playbook_id for h in b[:5]], (query, kwargs)
            for x, y in zip(a[:5], b[:5]):
                assert abs(x.dense - y.dense) < 1e-4 and abs(x.lexical - y.lexical) < 1e-4, (query, x, y)
    ours.close()
    qdrant.close()
