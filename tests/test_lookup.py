"""Hybrid lookup over a real store built from the evaluation estate (real embeddings)."""

from __future__ import annotations

import pytest

from app.estate.lookup import QueryError, _negations
from app.demo.lookup_eval import build_index
from conftest import ROOT


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from agent.embeddings import shared_embedder

    index, store, keys = build_index(ROOT / "tests" / "eval" / "estate.yaml", tmp_path_factory.mktemp("lookup"),
                                     shared_embedder())
    yield index, {v: k for k, v in keys.items()}
    store.close()


def top(built, query, **kw):
    index, names = built
    return [names[h.id] for h in index.search(query, **kw)]


def test_exact_ids_arns_and_urls(built):
    index, names = built
    for key_query in ("pg-instance-main1", "arn:aws:rds:us-west-2:111111111111:db:pg-instance-main1"):
        hits = index.search(key_query)
        assert names[hits[0].id] == "pg-main1" and any(w.startswith("exact") for w in hits[0].why)


def test_fuzzy_names_and_typos(built):
    assert top(built, "pg-instnce-main1")[0] == "pg-main1"
    assert set(top(built, "pg-main")[:2]) == {"pg-main1", "pg-main2"}


def test_a_name_typed_with_spaces_for_its_dashes_is_exact(built):
    index, names = built
    hits = index.search("how many messages are sitting in the orders queue?")
    # orders-queue lives in production and in staging: both are named exactly, the -dlq is not
    assert {names[h.id] for h in hits[:2]} == {"sqs-orders", "sqs-orders-stg"}
    assert all(h.components["exact"] == 1.0 for h in hits[:2])
    assert all(h.components["exact"] < 1.0 for h in hits if names[h.id] == "sqs-orders-dlq")
    assert top(built, "purge the orders queue dlq")[0] == "sqs-orders-dlq"  # the longer name wins
    assert top(built, "orders queue in staging")[0] == "sqs-orders-stg"  # hints still narrow it


def test_an_exclusion_leaves_out_what_carries_the_word(built):
    index, names = built
    assert "sqs-orders-dlq" in top(built, "orders queues", limit=5)
    for query in ("orders queues that aren't the dlq", "orders queues except the dlq ones", "orders queues, excluding dlq"):
        got = top(built, query, limit=5)
        assert got and "sqs-orders-dlq" not in got and "sqs-orders" in got, (query, got)
    for hit in index.search("instances that aren't running", limit=50):
        assert index.states[hit.row] != "running"
    # A listing leaves out before it is cut: every instance not running, however many running ones sort first
    every = index.search("list the instances", every_match=True, limit=500)
    not_running = {h.id for h in every if index.states[h.row] != "running"}
    assert not_running and len(every) > len(not_running) + 3
    listed = index.search("list the instances that aren't running", every_match=True, limit=len(not_running))
    assert {h.id for h in listed} == not_running
    # An environment left out by its tag or account, not only by name
    not_prod = index.search("queues that aren't in prod", limit=50)
    assert not_prod and all(index.tags[h.row].get("env") not in ("production", "prod") for h in not_prod)
    assert all("prod" not in str(index.account_names[h.row]) for h in not_prod)
    # Not exclusions: a tag expression's own negation, a word that merely starts with "except"
    assert _negations("env=prod but not app=main") == ("env=prod but not app=main", [])
    assert _negations("function that handles exceptions")[1] == []
    with pytest.raises(QueryError):
        index.search("except the dlq")


def test_tag_expressions(built):
    assert top(built, "env=prod AND app=main") == ["pg-main1"]
    staging = top(built, "env=staging", limit=100)
    assert staging and all(k.endswith("stg") or "stg" in k or "staging" in k or k for k in staging)
    index, names = built
    for hit in index.search("env=staging", limit=100):
        assert index.tags[hit.row].get("env") in ("staging", "stg", "stage")
    none_prod = index.search("NOT env=production", limit=200)
    assert all(index.tags[h.row].get("env") != "production" for h in none_prod)
    neq = index.search("env!=prod", limit=200)
    assert {h.id for h in neq} == {h.id for h in none_prod}
    either = index.search("(env=dev OR env=staging) AND app=orders", limit=200)
    assert either and all(index.tags[h.row].get("app") == "orders" for h in either)


def test_bad_tag_expression_is_a_clear_error(built):
    index, _ = built
    with pytest.raises(QueryError):
        index.search("(env=prod AND")


def test_an_empty_search_is_a_clear_error(built):
    index, _ = built
    for query in ("", "   "):
        with pytest.raises(QueryError, match="empty"):
            index.search(query)


def test_a_query_that_matches_nothing_has_no_hits(built):
    """Scores below the floor are not hits: nonsense gets nothing (it used to get 10 hits with empty reasons)."""
    index, _ = built
    for query in ("zzzzqqq-nothing", "qwertyuiop", "purple elephant dancing", "lorem ipsum dolor sit amet"):
        assert index.search(query) == [], query


def test_a_place_where_no_region_is_synced_has_no_hits_and_says_so(built):
    """The eval estate is in us-east-1 and us-west-2 only: "databases in europe" must not answer with us-*
    databases, and the note says no European region is synced."""
    index, _ = built
    result = index.search_result("databases in europe")
    assert result.hits == [] and any("European" in note for note in result.notes), result.notes
    assert index.search_result("queues in asia").hits == []
    assert index.search("databases in us-east-1")  # a synced region still answers


def test_tag_hits_say_honestly_why(built):
    """`env=prod AND NOT app=main`: no hit is labelled app=main; each says what its own tags are."""
    index, _ = built
    hits = index.search("env=prod AND NOT app=main", limit=50)
    assert hits
    for hit in hits:
        reasons = next(w for w in hit.why if w.startswith("tags "))[len("tags "):].split(", ")
        assert "app=main" not in reasons, reasons
        tags = index.tags[hit.row]
        assert f"env={tags['env']}" in reasons
        assert (f"app={tags['app']}" if "app" in tags else "no app tag") in reasons


def test_account_region_and_type_hints(built):
    assert top(built, "orders-db in staging")[0] == "orders-db-stg"
    index, names = built
    hits = index.search("database in staging", limit=50)
    assert hits and all(index.account_names[h.row] == "staging" and index.types[h.row].startswith("rds") for h in hits)
    assert all(index.regions[h.row] == "us-east-1" for h in index.search("bucket in us-east-1", limit=50))


def test_every_hit_says_why(built):
    index, _ = built
    for query in ("pg-main", "production database", "env=prod AND app=main", "bucket"):
        assert all(h.why for h in index.search(query))


def test_options_filter(built):
    index, _ = built
    hits = index.search("orders", limit=50, resource_type="sqs_queue")
    assert hits and all(index.types[h.row] == "sqs_queue" for h in hits)
    hits = index.search("orders", limit=50, account="staging")
    assert hits and all(index.account_names[h.row] == "staging" for h in hits)


def test_autocomplete_prefix_then_fuzzy(built):
    index, _ = built
    assert index.autocomplete("pg-inst")[:2] == ["pg-instance-main1", "pg-instance-main2"]
    assert "web-server-1" in index.autocomplete("websrv")  or "web-server-1" in index.autocomplete("web-ser")
    assert index.autocomplete("") == []


# The blind lookup sets (each README has its first run, before anything was changed for it): tests/eval_lookup, 134
# queries over two estates, 91.8% at first; tests/eval_lookup3, 124 on a logistics estate, 89.5%; tests/eval_lookup4,
# 127 on a games studio's estate held out until its first run, 82.7%. Sets 3 and 4 hold queries that must find nothing.
_E = ROOT / "tests"
BLIND_LOOKUP_SETS = [
    ("eval_lookup", {"eval": _E / "eval" / "estate.yaml", "holdout2": _E / "eval_holdout2" / "estate.yaml"}, 40, 0.90),
    ("eval_lookup3", {"lookup3": _E / "eval_lookup3" / "estate.yaml"}, 100, 0.93),
    ("eval_lookup4", {"lookup4": _E / "eval_lookup4" / "estate.yaml"}, 100, 0.88),
]


@pytest.mark.parametrize("folder, estates, least_rows, floor", BLIND_LOOKUP_SETS, ids=[s[0] for s in BLIND_LOOKUP_SETS])
def test_blind_lookup_evaluation(tmp_path, capsys, folder, estates, least_rows, floor):
    from agent.embeddings import shared_embedder
    from app.demo.lookup_eval import run

    report = run(_E / folder / "queries.yaml", estates, tmp_path, shared_embedder())
    with capsys.disabled():
        print("\n" + report.summary())
    assert len(report.rows) >= least_rows
    assert report.accuracy >= floor, report.summary()


def test_cloudops_search_says_no_match_notes_and_data_age(tmp_path):
    """The real CLI over an index written as a sync writes it: an empty query is one sentence (exit 2); a
    place with no synced region prints "no match" and the note (JSON: no hits, the note on stderr); every
    hit carries synced_at and semantic_partial."""
    import json
    import os
    import subprocess
    import sys

    from agent.embeddings import shared_embedder
    from conftest import index_eval_estate

    index_eval_estate(tmp_path, shared_embedder())
    env = {**os.environ, "CLOUDOPS_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}

    def search(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app.interfaces.cli", "search", *args], capture_output=True,
                              text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=300)

    empty = search("  ")
    assert empty.returncode == 2 and "empty" in empty.stderr and "Traceback" not in empty.stderr
    europe = search("databases in europe")
    assert europe.returncode == 0 and europe.stdout.startswith("no match: no European region is synced")
    as_json = search("databases in europe", "--json")
    assert json.loads(as_json.stdout) == [] and "note: no European region is synced" in as_json.stderr
    rows = json.loads(search("pg-instance-main1", "--json").stdout)
    assert rows[0]["name"] == "pg-instance-main1" and rows[0]["synced_at"] and rows[0]["semantic_partial"] is False
    assert json.loads(search("zzzzqqq-nothing", "--json").stdout) == []


# -- found with blind set #3 (tests/eval_lookup3; a development set since its first run) ----------------

@pytest.fixture(scope="module")
def kestrel(tmp_path_factory):
    """The Kestrel Freight estate: camelCase and snake_case names, capitalised tag keys, a tag value with a
    space, volumes that say which instance they are attached to."""
    from agent.embeddings import shared_embedder

    index, store, keys = build_index(ROOT / "tests" / "eval_lookup3" / "estate.yaml",
                                     tmp_path_factory.mktemp("kestrel"), shared_embedder())
    yield index, {v: k for k, v in keys.items()}
    store.close()


def test_camel_and_snake_case_names_are_read_as_words(kestrel):
    from app.estate.documents import name_words

    assert name_words("rotateDbCredentials") == "rotate db credentials"
    assert name_words("OrdersApiTaskRole") == "orders api task role"
    assert name_words("dev_sandbox_x") == "dev sandbox x"
    assert name_words("pg-instance-main1") == ""  # hyphens are read by every index already
    assert top(kestrel, "rotate db credentials")[0] == "fn-rotate-creds"


def test_a_tag_value_with_a_space_is_one_value_when_the_index_holds_it(kestrel):
    index, names = kestrel
    hits = index.search("Owner=WMS Team AND Environment=Production")
    assert {names[h.id] for h in hits} == {"wms-app-prd", "ddb-stock-levels"}
    assert all("Owner=WMS Team" in " ".join(h.why) for h in hits)
    # Words after a value the index does not hold stay free text.
    assert top(kestrel, "Owner=WMS Team instance")[0] in {"wms-app-prd", "wms-app-stg"}


def test_a_tag_as_written_ranks_before_its_synonym(kestrel):
    """Environment=Development also matches environment=dev (a synonym); the literal ones come first."""
    first_two = top(kestrel, "Environment=Development")[:2]
    assert set(first_two) == {"invoicing-db-devcopy", "bkt-dev-scratch"}


def test_place_names_with_accents_are_places(kestrel):
    index, _ = kestrel
    result = index.search_result("bucket in são paulo")
    assert result.hits == [] and "sa-east-1" in result.notes[0]


def test_a_service_the_sync_does_not_read_is_no_match_with_a_note(kestrel):
    index, _ = kestrel
    result = index.search_result("elasticache redis cluster")
    assert result.hits == [] and "not a service the sync reads" in result.notes[0]
    # Named after the head of the query, it is only a word: the lambdas are still searched.
    assert index.search("lambda that invalidates cloudfront")


def _tiny_index(tmp_path, resources: list[dict]):
    """An index of a few hand-written resources in one account and region (real embeddings)."""
    import yaml
    from agent.embeddings import shared_embedder

    base = {"account_id": "111111111111", "account_name": "prod", "region": "us-east-1"}
    estate = tmp_path / "estate.yaml"
    estate.write_text(yaml.safe_dump({
        "accounts": [{"account_id": "111111111111", "name": "prod", "profile": "prod", "regions": ["us-east-1"]}],
        "resources": [{**base, "key": r["name"], "resource_id": r["name"], **r} for r in resources]}))
    index, store, _ = build_index(estate, tmp_path / "index", shared_embedder())
    return index, store


def _cluster(name: str, engine: str, **attributes) -> dict:
    return {"resource_type": "rds_db_cluster", "name": name, "engine": engine, "current_state": "available",
            "arn": f"arn:aws:rds:us-east-1:111111111111:cluster:{name}", "attributes": attributes}


def _db_instance(name: str, engine: str) -> dict:
    return {"resource_type": "rds_db_instance", "name": name, "engine": engine, "current_state": "available",
            "arn": f"arn:aws:rds:us-east-1:111111111111:db:{name}"}


def test_documentdb_and_neptune_clusters_are_rds_clusters_the_sync_reads(tmp_path):
    """DescribeDBClusters lists them (engine docdb / neptune): named by their service, they are found."""
    index, store = _tiny_index(tmp_path, [_cluster("orders-main", "aurora-postgresql"),
                                          _cluster("catalog-main", "docdb"), _cluster("social-main", "neptune")])
    try:
        for query, expected in (("documentdb cluster", "catalog-main"), ("the neptune cluster", "social-main")):
            result = index.search_result(query)
            assert [index.names[h.row] for h in result.hits][:1] == [expected], query
            assert not any("not a service the sync reads" in note for note in result.notes), query
    finally:
        store.close()


def test_when_every_match_is_excluded_the_search_says_so(tmp_path):
    index, store = _tiny_index(tmp_path, [{"resource_type": "sqs_queue", "name": "payments-dlq",
                                           "arn": "arn:aws:sqs:us-east-1:111111111111:payments-dlq"}])
    try:
        result = index.search_result("payments-dlq except the dlq")
        assert result.hits == [] and result.notes == ["every match carries 'dlq', which was excluded"]
    finally:
        store.close()


def test_a_listing_leaves_out_before_it_is_cut(tmp_path):
    """Thirty running instances sort before the two stopped ones: "aren't running" still lists both."""
    def instance(name, state):
        return {"resource_type": "ec2_instance", "name": name, "current_state": state,
                "arn": f"arn:aws:ec2:us-east-1:111111111111:instance/{name}"}

    index, store = _tiny_index(tmp_path, [instance(f"app-{n:02d}", "running") for n in range(30)]
                               + [instance("zz-batch-1", "stopped"), instance("zz-batch-2", "stopped")])
    try:
        listed = index.search("list the instances that aren't running", every_match=True, limit=2)
        assert sorted(index.names[h.row] for h in listed) == ["zz-batch-1", "zz-batch-2"]
    finally:
        store.close()


def test_a_spaced_name_with_a_typo_is_nearly_exact_but_never_a_sibling(tmp_path):
    def instance(name):
        return {"resource_type": "ec2_instance", "name": name, "current_state": "running",
                "arn": f"arn:aws:ec2:us-east-1:111111111111:instance/{name}"}

    topic = {"resource_type": "sns_topic", "name": "main", "arn": "arn:aws:sns:us-east-1:111111111111:main"}
    index, store = _tiny_index(tmp_path, [instance("perforce-main"), instance("web-server-1"), instance("web-server-3"),
                                          topic])
    try:
        hits = index.search("perforse main")
        assert index.names[hits[0].row] == "perforce-main" and "exact perforce-main (near)" in hits[0].why
        assert all(not any("(near)" in w for w in h.why) for h in index.search("web server 2"))
    finally:
        store.close()


def test_a_database_may_be_an_aurora_cluster_and_serverless_is_a_word(tmp_path):
    index, store = _tiny_index(tmp_path, [
        _db_instance("inventory-legacy", "mysql"), _db_instance("billing-db", "postgres"),
        _cluster("inventory-v2", "aurora-mysql", serverless_v2={"min_acu": 2, "max_acu": 64}),
        _db_instance("inventory-v2-instance-1", "aurora-mysql")])
    try:
        assert "inventory-v2" in [index.names[h.row] for h in index.search("the inventory databases", limit=5)]
        assert [index.names[h.row] for h in index.search("aurora mysql serverless")][:1] == ["inventory-v2"]
        # "db instance" asks for an instance, not the cluster
        assert "inventory-v2" not in [index.names[h.row] for h in index.search("inventory db instances", limit=5)]
    finally:
        store.close()


def test_a_name_typed_whole_that_resembles_no_name_is_no_match(kestrel):
    index, _ = kestrel
    assert index.search("kafka-broker-01") == []  # it shares only "01" with the orders API boxes
    assert top(kestrel, "prd-euc1-orders-api-1")[0] in {"orders-api-01", "orders-api-10"}


@pytest.mark.parametrize("query", ["disks mounted on build-agent-1", "build-agent-1's volumes",
                                   "the volume attached to build-agent-1"])
def test_what_a_named_resource_is_linked_to(kestrel, query):
    index, names = kestrel
    hits = index.search(query)
    assert names[hits[0].id] == "vol-build-cache" and hits[0].why[0] == "linked to build-agent-1"


@pytest.mark.parametrize("query, expected", [
    ("the role orders api tasks assume", "role-orders-task"),            # not the ECS service orders-api
    ("old volume of the orders api nobody uses", "vol-orders-data-old"),
])
def test_a_name_typed_with_spaces_does_not_outrank_the_type_asked_for(kestrel, query, expected):
    assert top(kestrel, query)[0] == expected


def test_a_type_noun_before_what_a_resource_has_is_no_type_filter(built):
    """"db backups" are backups (here, a bucket of them), not databases."""
    assert top(built, "where the db backups go")[0] == "bkt-backups"


# -- found with blind set #4 (tests/eval_lookup4; held-out figure at its first run, a development set since) ---

@pytest.fixture(scope="module")
def otterfall(tmp_path_factory):
    """The Otterfall Studios estate: environment under three tag keys, numbered server series, replicas in
    another region, relations by bare name, descriptions that say what a function is for."""
    from agent.embeddings import shared_embedder

    index, store, keys = build_index(ROOT / "tests" / "eval_lookup4" / "estate.yaml",
                                     tmp_path_factory.mktemp("otterfall"), shared_embedder())
    yield index, {v: k for k, v in keys.items()}
    store.close()


def test_the_environment_is_read_from_environment_and_stage_tags_too(otterfall):
    """lobby-api runs in three clusters; the one tagged environment=production is the production one."""
    assert top(otterfall, "lobby-api in prod")[0] == "svc-lobby-live"


def test_an_instance_is_found_by_its_ip_address(otterfall):
    index, names = otterfall
    hits = index.search("10.61.1.10")
    assert names[hits[0].id] == "ec2-perforce-edge" and hits[0].why[0] == "exact 10.61.1.10"


@pytest.mark.parametrize("query, expected", [
    ("db-07 read replicas", {"rds-db07-ro1", "rds-db07-tyo"}),  # a relation's words after the name
    ("source of db-07-ro-1", {"rds-db07"}),                      # "source", "primary": the source instance
])
def test_a_relation_said_in_words_answers_from_the_named_resource(otterfall, query, expected):
    index, names = otterfall
    hits = index.search(query)
    assert {names[h.id] for h in hits} == expected and all(h.why[0].startswith("linked to") for h in hits)


def test_a_member_of_a_numbered_series_that_does_not_exist_is_no_match(otterfall, kestrel):
    index, _ = otterfall
    assert index.search("gs-eun1-sky-007") == []           # -001, -002 and -012 exist: -007 is not a typo of them
    assert top(otterfall, "gs-eun1-sky-2")[0] == "ec2-gs-eun1-002"  # 2 and 002 are one number
    assert top(kestrel, "prd-euc1-orders-api-03") == []


def test_what_a_function_is_for_is_searched_in_its_description(otterfall):
    from app.estate.documents import make_document, words_text

    doc = make_document(resource_type="lambda_function", arn="arn:aws:lambda:eu-north-1:1:function:svc-3f9a",
                        resource_id="svc-3f9a", name="svc-3f9a", account_id="1", account_name="a",
                        region="eu-north-1", state="Active", tags={},
                        attributes={"description": "Validates app store receipts"})
    assert "receipts" in words_text(doc)  # the words index reads it, not only the meaning vector
    assert top(otterfall, "receipt validation function")[0] == "fn-svc-3f9a"  # named by a hash


def test_country_names_are_places(kestrel):
    index, names = kestrel
    hits = index.search("database in germany")
    assert hits and all(index.regions[h.row] == "eu-central-1" for h in hits)
