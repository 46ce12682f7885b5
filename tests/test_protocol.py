"""The wire contract: strict requests, aliases for resource types, published JSON Schemas up to date."""

import json

import pytest
from pydantic import ValidationError

from agent.protocol import IdentifiedResource, PlanRequest, json_schemas
from conftest import ROOT


def test_published_schemas_match_the_models():
    for name, schema in json_schemas().items():
        published = json.loads((ROOT / "docs" / "protocol" / name).read_text())
        assert published == json.loads(json.dumps(schema)), f"docs/protocol/{name} is stale: run cloudops schema"


def test_resource_type_aliases_are_canonicalised():
    for alias in ("rds_instance", "AWS::RDS::DBInstance", "rds-db-instance"):
        assert IdentifiedResource(resource_type=alias, resource_id="x").resource_type == "rds_db_instance"


@pytest.mark.parametrize("bad, field", [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x" * 4001}, "prompt"),
    ({"prompt": "stop", "surprise": 1}, "surprise"),
    ({"prompt": "stop", "identified_resources": [{"resource_type": "spaceship", "resource_id": "x"}]},
     "identified_resources.0.resource_type"),
    ({"prompt": "stop", "identified_resources": [{"resource_type": "ec2_instance", "resource_id": "i-1",
                                                  "account_id": "12"}]}, "identified_resources.0.account_id"),
    ({"prompt": "stop", "identified_resources": [{"resource_type": "ec2_instance", "resource_id": "i-1",
                                                  "region": "mars-1"}]}, "identified_resources.0.region"),
    ({"prompt": "stop", "user_context": {"aws_accounts": [{"name": "p", "secret_access_key": "x"}]}},
     "user_context.aws_accounts.0.secret_access_key"),
])
def test_malformed_requests_name_the_field(bad, field):
    with pytest.raises(ValidationError) as info:
        PlanRequest.model_validate(bad)
    assert field in {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}
