"""Accounts from where operators already have them: `cloudops accounts import` (the AWS config file's
profiles: static keys, role_arn + source_profile, SSO), `cloudops accounts discover` (an AWS Organization
in moto, a role profile per member account, written reversibly), and an SSO login that expired or was
never made, which every path reports as one sentence naming `aws sso login --profile X`."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import yaml
from click.testing import CliRunner
from moto import mock_aws

from app.interfaces.cli import main
from conftest import ROOT

CLI = [sys.executable, "-m", "app.interfaces.cli"]

AWS_CONFIG = """\
# my own AWS config: CloudOps must leave every byte of this as it is
[default]
region = eu-west-1

[profile prod]
role_arn = arn:aws:iam::111111111111:role/Operator
source_profile = default
region = us-west-2

[profile sso-dev]
sso_session = corp
sso_account_id = 333333333333
sso_role_name = ReadOnly
region = us-east-1

[profile legacy-sso]
sso_start_url = https://legacy.awsapps.com/start
sso_region = us-east-1
sso_account_id = 444444444444
sso_role_name = ReadOnly

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1
sso_registration_scopes = sso:account:access
"""
CREDENTIALS = "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = not-a-real-secret-key\n" \
              "\n[ci]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = another-fake-secret\n"


@pytest.fixture
def aws_home(tmp_path, monkeypatch):
    """A user's home with an AWS config and credentials file and no SSO token cache, and an empty
    CLOUDOPS_HOME. Nothing of the real machine's AWS set-up is read."""
    home = tmp_path / "user"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_text(AWS_CONFIG)
    (home / ".aws" / "credentials").write_text(CREDENTIALS)
    cloudops = tmp_path / "cloudops"
    env = {"HOME": str(home), "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"), "CLOUDOPS_HOME": str(cloudops)}
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return type("AwsHome", (), {"home": home, "config": home / ".aws" / "config", "cloudops": cloudops, "env": env})


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def accounts_in(cloudops: Path) -> dict[str, dict]:
    data = yaml.safe_load((cloudops / "config.yaml").read_text()) or {}
    return {a["name"]: a for a in data.get("accounts", [])}


# ---- import ------------------------------------------------------------------------------------------------

def test_import_all_adds_every_kind_of_profile_with_its_region_and_account(aws_home):
    result = invoke("accounts", "import", "--all", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    kinds = {p["name"]: p["kind"] for p in out["offered"]}
    assert kinds == {"default": "keys", "ci": "keys", "prod": "role", "sso-dev": "sso", "legacy-sso": "sso"}
    accounts = accounts_in(aws_home.cloudops)
    assert accounts["prod"] == {"name": "prod", "profile": "prod", "regions": ["us-west-2"], "account_id": "111111111111"}
    assert accounts["sso-dev"]["account_id"] == "333333333333" and accounts["sso-dev"]["regions"] == ["us-east-1"]
    assert accounts["legacy-sso"]["account_id"] == "444444444444" and accounts["legacy-sso"].get("regions", []) == []
    assert accounts["ci"]["profile"] == "ci" and "account_id" not in accounts["ci"]
    text = (aws_home.cloudops / "config.yaml").read_text()
    assert "not-a-real-secret" not in text and "AKIA" not in text and "secret" not in result.output
    # Run again: nothing is offered twice.
    again = json.loads(invoke("accounts", "import", "--all", "--json").output)
    assert again["offered"] == [] and again["added"] == []


def test_import_one_profile_with_regions_and_refusals_in_one_sentence(aws_home):
    result = invoke("accounts", "import", "--profile", "sso-dev", "--region", "eu-west-1", "--region", "eu-central-1")
    assert result.exit_code == 0 and "added sso-dev" in result.output
    assert accounts_in(aws_home.cloudops)["sso-dev"]["regions"] == ["eu-west-1", "eu-central-1"]
    missing = invoke("accounts", "import", "--profile", "nope")
    assert missing.exit_code == 2
    assert f"no profile 'nope' in {aws_home.config}; its profiles: ci, default, legacy-sso, prod, sso-dev" in missing.output
    assert "Traceback" not in missing.output


def test_import_without_a_terminal_or_a_choice_lists_and_adds_nothing(aws_home):
    result = invoke("accounts", "import")
    assert result.exit_code == 0
    assert "sso-dev" in result.output and "nothing added: choose with --all or --profile NAME" in result.output
    assert not (aws_home.cloudops / "config.yaml").exists()


def test_import_says_what_is_wrong_with_the_aws_config_file(aws_home):
    aws_home.config.write_text("[profile broken\nregion = x\n")
    broken = invoke("accounts", "import", "--all")
    assert broken.exit_code == 2 and f"the AWS config file {aws_home.config}" in broken.output
    assert "could not be read" in broken.output and "Traceback" not in broken.output
    aws_home.config.unlink()
    (aws_home.home / ".aws" / "credentials").unlink()
    empty = invoke("accounts", "import", "--all")
    assert empty.exit_code == 2 and f"no AWS profiles found in {aws_home.config}" in empty.output


def _run_on_a_terminal(args: list[str], env: dict, answers: list[tuple[str, str]], timeout: float = 60) -> str:
    """The real CLI on a pseudo-terminal: wait for each prompt text, type its answer; all it printed."""
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(CLI + args, env={**os.environ, **env}, cwd=ROOT, stdin=child_fd, stdout=child_fd,
                            stderr=child_fd, close_fds=True)
    os.close(child_fd)
    seen, pending = "", list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main_fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main_fd, 4096).decode(errors="replace")
            except OSError:
                break
            seen += chunk
        if pending and pending[0][0] in seen:
            os.write(main_fd, (pending.pop(0)[1] + "\n").encode())
            seen += "\n"
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=10)
    os.close(main_fd)
    assert proc.returncode == 0, seen
    return seen


def test_import_on_a_terminal_lists_the_profiles_and_adds_the_chosen_ones(aws_home):
    out = _run_on_a_terminal(["accounts", "import"], aws_home.env, [("Add which?", "7"), ("answer with numbers", "2,4-5")])
    assert "Profiles in" in out and "SSO session corp, role ReadOnly in 333333333333" in out
    assert "answer with numbers from 1 to 5" in out  # '7' was asked again, not guessed
    # Offered in name order: ci, default, legacy-sso, prod, sso-dev -> 2, 4, 5.
    assert set(accounts_in(aws_home.cloudops)) == {"default", "prod", "sso-dev"}


# ---- discover ----------------------------------------------------------------------------------------------

@pytest.fixture
def organization(aws_home):
    """An AWS Organization in moto: the default profile's account is its management account, with three
    member accounts (one of them suspended... moto has no suspension, so two active plus the manager)."""
    with mock_aws():
        orgs = boto3.Session(profile_name="default").client("organizations", region_name="us-east-1")
        orgs.create_organization(FeatureSet="ALL")
        ids = {}
        for name in ("Dev Workloads", "Data Platform", "Security"):
            status = orgs.create_account(Email=f"{name.split()[0].lower()}@example.com", AccountName=name)
            ids[name] = status["CreateAccountStatus"]["AccountId"]
        yield ids


def test_discover_lists_without_writing_then_writes_role_profiles_that_boto3_uses(aws_home, organization):
    original = aws_home.config.read_bytes()
    listed = invoke("accounts", "discover", "--role", "OrganizationAccountAccessRole", "--from", "default")
    assert listed.exit_code == 0, listed.output
    assert "4 accounts in the organization; 3 to add through role OrganizationAccountAccessRole" in listed.output
    assert "profile dev-workloads" in listed.output and "nothing written: run again with --write" in listed.output
    assert aws_home.config.read_bytes() == original and not (aws_home.cloudops / "config.yaml").exists()

    result = invoke("accounts", "discover", "--role", "OrganizationAccountAccessRole", "--from", "default",
                    "--region", "eu-west-1", "--write", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {a["profile"] for a in out["accounts"]} == {"dev-workloads", "data-platform", "security"}
    assert out["skipped"][0]["reason"].startswith("the account these credentials belong to")
    backup = Path(out["backup"])
    assert backup.read_bytes() == original
    text = aws_home.config.read_text()
    assert text.startswith(original.decode())  # the user's part, byte for byte, then CloudOps' block
    assert "aws_access_key_id" not in text.split(original.decode(), 1)[1]
    accounts = accounts_in(aws_home.cloudops)
    assert accounts["dev-workloads"] == {"name": "dev-workloads", "profile": "dev-workloads", "regions": ["eu-west-1"],
                                         "account_id": organization["Dev Workloads"]}
    # The written profile is an ordinary AWS profile: boto3 assumes the role into that member account.
    from app.awsclient import AccountSession

    session = AccountSession("dev-workloads", "dev-workloads", ["eu-west-1"])
    assert session.client("sts", "eu-west-1").get_caller_identity()["Account"] == organization["Dev Workloads"]

    # Run again: nothing new, nothing rewritten.
    again = json.loads(invoke("accounts", "discover", "--role", "OrganizationAccountAccessRole", "--from", "default",
                              "--write", "--json").output)
    assert again["accounts"] == [] and again["written"] is None

    # Reversible: removing the accounts takes their profiles out; the file is the user's own again.
    for name in ("dev-workloads", "data-platform"):
        removed = invoke("accounts", "remove", name)
        assert f"removed profile {name} (written by `accounts discover`)" in removed.output
    assert "[profile security]" in aws_home.config.read_text()
    invoke("accounts", "remove", "security")
    assert aws_home.config.read_bytes() == original
    # A profile of the user's own is never touched by remove.
    invoke("accounts", "import", "--profile", "prod")
    invoke("accounts", "remove", "prod")
    assert aws_home.config.read_bytes() == original


def test_discover_names_what_went_wrong_in_one_sentence(aws_home, organization):
    no_source = invoke("accounts", "discover", "--role", "R", "--from", "nope")
    assert no_source.exit_code == 2 and "no profile 'nope'" in no_source.output
    bad_role = invoke("accounts", "discover", "--role", "bad role!")
    assert bad_role.exit_code == 2 and "is not an IAM role name" in bad_role.output
    # SSO credentials with no login: the sentence names the command to run.
    sso = invoke("accounts", "discover", "--role", "R", "--from", "sso-dev")
    assert sso.exit_code == 2 and "`aws sso login --profile sso-dev`" in sso.output
    assert "Traceback" not in sso.output


@mock_aws
def test_discover_outside_an_organization_says_so(aws_home):
    result = invoke("accounts", "discover", "--role", "R", "--from", "default")
    assert result.exit_code == 2
    assert "AWSOrganizationsNotInUseException" in result.output and "in no AWS Organization" in result.output


# ---- SSO with no cached token ----------------------------------------------------------------------------

def test_sso_without_a_login_is_one_sentence_naming_the_profile_for_every_service(aws_home):
    from botocore.exceptions import SSOError

    from app.awsclient import AccountSession, describe_error

    session = AccountSession("dev", "sso-dev", ["us-east-1"])
    # DynamoDB resolves credentials before botocore's after-call events; the sentence must name the profile anyway.
    for service, call in (("sts", "get_caller_identity"), ("dynamodb", "list_tables"), ("ec2", "describe_instances")):
        with pytest.raises(SSOError) as caught:
            getattr(session.client(service, "us-east-1"), call)()
        assert describe_error(caught.value) == ("the AWS SSO login of profile sso-dev has expired or was never made: "
                                                "run `aws sso login --profile sso-dev`, then try again")
    legacy = AccountSession("legacy", "legacy-sso", ["us-east-1"])
    with pytest.raises(SSOError) as caught:
        legacy.client("s3", "us-east-1").list_buckets()
    assert "`aws sso login --profile legacy-sso`" in describe_error(caught.value)


def test_sync_and_run_report_the_sso_sentence(aws_home):
    """The CLI's sync (account-level: no account id to skip STS with) and a scope-level failure (the account
    id is known, so each scope is tried and recorded) both carry the sentence; so does the executor."""
    from app.config import AccountConfig, Config, save_config

    aws_home.cloudops.mkdir()
    save_config(Config(accounts=[AccountConfig(name="dev", profile="sso-dev", regions=["us-east-1"]),
                                 AccountConfig(name="legacy", profile="legacy-sso", regions=["us-east-1"],
                                               account_id="444444444444")]), aws_home.cloudops / "config.yaml")
    synced = subprocess.run(CLI + ["sync", "--json", "--service", "sqs"], env={**os.environ, **aws_home.env}, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert synced.returncode == 2, synced.stderr[-2000:]
    errors = {e["account"]: e["error"] for e in json.loads(synced.stdout)["errors"]}
    assert errors["dev"] == ("the AWS SSO login of profile sso-dev has expired or was never made: "
                             "run `aws sso login --profile sso-dev`, then try again")
    assert "`aws sso login --profile legacy-sso`" in errors["legacy"]
    status = json.loads(subprocess.run(CLI + ["status", "--json"], env={**os.environ, **aws_home.env}, cwd=ROOT,
                                       capture_output=True, text=True, timeout=120).stdout)
    rows = status["scopes"] if isinstance(status, dict) else status
    assert any("`aws sso login --profile legacy-sso`" in (r.get("last_error") or "") for r in rows)

    from agent.protocol import Step
    from app.execution.approvals import ApprovalBook
    from app.execution.audit import AuditTrail
    from app.execution.executor import Executor

    executor = Executor(ApprovalBook(aws_home.cloudops / "state.db"), AuditTrail(aws_home.cloudops / "audit.db"))
    step = Step(step_id="s1", service="sqs", operation="ListQueues", parameters={}, region="us-east-1",
                account_id="333333333333", account_name="dev", profile="sso-dev", mutating=False,
                command="aws sqs list-queues --region us-east-1 --profile sso-dev",
                argv=["aws", "sqs", "list-queues", "--region", "us-east-1", "--profile", "sso-dev"])
    outcome = executor._run_step(step)
    assert outcome.status == "failed" and "`aws sso login --profile sso-dev`" in outcome.error
