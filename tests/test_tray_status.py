"""The tray's sync line tells the truth per scope (issue 15, item 6: it said "synced just now" while 70 of
72 scopes were 11 minutes old), and its errors line names the failing accounts and regions in words.

The line is computed from ``GET /v1/status`` (the status book's rows and the scheduler's last run); the
last test runs the real endpoint and its scheduler over moto and reads the line the way the tray does."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

from app.desktop.tray import StatusLine, reason_words, status_from

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
UNREACHABLE = "EndpointConnectionError: Could not connect to the endpoint URL: \"https://rds.us-east-1.amazonaws.com/\""


def row(account: str, region: str, service: str, *, success: timedelta | None, error: str | None = None,
        error_at: timedelta | None = None) -> dict:
    """A /v1/status scope row: ``success`` and ``error_at`` are how long ago, as the endpoint serialises them."""
    def ago(delta):
        return None if delta is None else (NOW - delta).replace(tzinfo=None).isoformat()

    return {"scope": f"{account}/{region}/{service}", "account_id": "1", "account_name": account, "region": region,
            "service": service, "last_success": ago(success), "last_error": error, "last_error_at": ago(error_at),
            "last_attempt": ago(error_at if error else success)}


SERVICES = ["ec2", "rds", "s3", "sqs", "sns", "lambda", "dynamodb", "ecs", "elbv2", "autoscaling", "eks", "cloudformation"]


def estate_rows(fresh: set[tuple[str, str, str]], minutes_old: int = 11) -> list[dict]:
    """72 scopes (3 accounts x 2 regions x 12 services): those in ``fresh`` synced a minute ago, every other one
    failed a minute ago (AWS unreachable) and holds data ``minutes_old`` old."""
    rows = []
    for account in ("production", "staging", "dev"):
        for region in ("us-east-1", "us-west-2"):
            for service in SERVICES:
                if (account, region, service) in fresh:
                    rows.append(row(account, region, service, success=timedelta(minutes=1)))
                else:
                    rows.append(row(account, region, service, success=timedelta(minutes=minutes_old),
                                    error=UNREACHABLE, error_at=timedelta(minutes=1)))
    return rows


def test_70_of_72_scopes_failed_is_said_with_the_oldest_data():
    body = {"documents": 93, "scopes": estate_rows({("production", "us-west-2", "rds"), ("production", "us-west-2", "ec2")})}
    line = status_from(body)
    assert line.text(NOW) == "93 resources · synced 2 of 72 scopes 1 min ago; 70 failed (oldest data 11 min)"
    assert line.errors == 70
    assert line.errors_text() == ("Failing: dev in us-east-1, us-west-2 (AWS not reachable); production in us-east-1, "
                                  "us-west-2 (AWS not reachable); staging in us-east-1, us-west-2 (AWS not reachable)")


def test_every_scope_fresh_or_of_different_ages():
    everything = {(a, r, s) for a in ("production", "staging", "dev") for r in ("us-east-1", "us-west-2") for s in SERVICES}
    assert status_from({"documents": 5, "scopes": estate_rows(everything)}).text(NOW) == \
        "5 resources · synced 72 scopes 1 min ago"
    mixed = estate_rows(everything)
    mixed[0] = row("production", "us-east-1", "ec2", success=timedelta(hours=5))  # a filtered sync left it behind
    line = status_from({"documents": 5, "scopes": mixed})
    assert line.text(NOW) == "5 resources · synced 72 scopes 1 min ago (oldest data 5 h)"
    assert line.errors_text() is None


def test_all_failed_never_synced_and_nothing_yet():
    failed = [row("production", "us-east-1", s, success=timedelta(days=3), error="AccessDenied: no", error_at=timedelta(0))
              for s in ("ec2", "rds")] + [row("dev", "global", "s3", success=None, error="ThrottlingException: slow",
                                              error_at=timedelta(0))]
    line = status_from({"documents": 0, "scopes": failed})
    assert line.text(NOW) == "0 resources · all 3 scopes failed their last sync (oldest data 3 days; 1 scope never synced)"
    assert line.errors_text() == "Failing: dev in global services (throttled by AWS); production in us-east-1 (access denied)"
    assert status_from({"documents": 0, "scopes": []}).text(NOW) == "0 resources · never synced"
    assert StatusLine(unreachable=True).text() == "Endpoint not answering"


def test_an_account_the_last_sync_could_not_start_for_counts_as_failed():
    """An expired SSO login stops a sync before any scope is listed, so the account's rows keep their old
    success: the scheduler's last run (in /v1/status) says so, and the line does not call them fresh."""
    rows = [row("production", "us-east-1", "ec2", success=timedelta(minutes=1)),
            row("staging", "us-east-1", "ec2", success=timedelta(minutes=40)),
            row("staging", "us-east-1", "rds", success=timedelta(minutes=40))]
    sso = ("the AWS SSO login of profile staging has expired or was never made: run `aws sso login --profile staging`, "
           "then try again")
    last = {"kind": "incremental", "finished_at": (NOW - timedelta(minutes=1)).isoformat(), "outcome": "done",
            "errors": [{"scope": "staging/*/*", "account": "staging", "error": sso},
                       {"scope": "dev/*/*", "account": "dev", "error": "NoCredentialsError: Unable to locate credentials"}]}
    line = status_from({"documents": 9, "scopes": rows, "schedule": {"running": None, "last": last}})
    assert line.text(NOW) == ("9 resources · synced 1 of 3 scopes 1 min ago; 2 failed (oldest data 40 min); "
                              "1 account not reached")
    assert line.errors_text() == ("Failing: staging in us-east-1 (sign in: aws sso login --profile staging); "
                                  "dev (no credentials)")
    # A sync the tray ran itself, newer than the scheduler's, and clean: nothing is failing any more.
    manual = {"finished_at": NOW.isoformat(), "errors": []}
    rows[1:] = [row("staging", "us-east-1", s, success=timedelta(0)) for s in ("ec2", "rds")]
    healed = status_from({"documents": 9, "scopes": rows, "schedule": {"running": None, "last": last}}, manual)
    assert healed.errors_text() is None and healed.text(NOW) == "9 resources · synced 3 scopes just now (oldest data 1 min)"


def test_a_running_scheduled_sync_shows_and_keeps_the_ages():
    rows = [row("production", "us-east-1", "ec2", success=timedelta(minutes=20))]
    line = status_from({"documents": 4, "scopes": rows, "schedule": {"running": {"kind": "incremental"}, "last": None}})
    assert line.scheduled and line.text(NOW) == "Syncing… · 4 resources · synced 1 scope 20 min ago"


def test_reasons_in_words():
    assert reason_words(UNREACHABLE) == "AWS not reachable"
    assert reason_words("AccessDeniedException: User is not authorized") == "access denied"
    assert reason_words("the AWS profile 'x' is not in the AWS config file (/h/.aws/config): add it") == "profile not found"
    assert reason_words("InternalFailure: boom") == "InternalFailure"
    assert reason_words("something odd happened " * 10).endswith("…")


def test_the_tray_reads_the_running_apps_truth_over_http(tmp_path, stack, monkeypatch):
    """The real endpoint (start_endpoint, its scheduler syncing by itself) over moto: production syncs,
    staging's SSO profile has no login (each scope fails), dev's has none either and no account id (the sync
    cannot start for it). The tray's client reads /v1/status over HTTP and says all of that."""
    from app.config import AccountConfig, Config, save_config
    from app.demo.demo_estate import DEMO_ACCOUNTS, simulated_estate
    from app.desktop.tray import EndpointClient, Tray
    from app.interfaces.endpoint import start_endpoint

    with simulated_estate(DEMO_ACCOUNTS[:1]):
        with open(os.environ["AWS_CONFIG_FILE"], "a") as config:  # the demo's AWS config, plus two SSO profiles
            config.write("\n[profile staging-sso]\nsso_session = corp\nsso_account_id = 222222222222\n"
                         "sso_role_name = ReadOnly\n\n[profile dev-sso]\nsso_session = corp\nsso_account_id = "
                         "333333333333\nsso_role_name = ReadOnly\n\n[sso-session corp]\n"
                         "sso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n")
        monkeypatch.setenv("HOME", str(tmp_path / "user"))  # no SSO token cache
        monkeypatch.setenv("CLOUDOPS_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("CLOUDOPS_SCHEDULE_DELAY_S", "0.1")
        (tmp_path / "home").mkdir(mode=0o700)
        save_config(Config(accounts=[
            AccountConfig(name="production", profile="prod", regions=["us-west-2"], account_id="111111111111"),
            AccountConfig(name="staging", profile="staging-sso", regions=["us-west-2"], account_id="222222222222"),
            AccountConfig(name="dev", profile="dev-sso", regions=["us-west-2"])]), tmp_path / "home" / "config.yaml")
        endpoint = start_endpoint(lambda: stack)
        try:
            assert endpoint.wait_started()
            tray = Tray(actions=None, client=EndpointClient(endpoint.url, endpoint.token))
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                tray.refresh()
                if endpoint.service.scheduler.last_run is not None:
                    break
                time.sleep(0.2)
            tray.refresh()
            line = tray.status
            assert line.documents > 0 and not line.scheduled
            total = len(line.scopes)
            assert total % 2 == 0 and line.errors == total // 2  # production's scopes fresh, staging's failed
            assert line.text() == (f"{line.documents} resources · synced {total // 2} of {total} scopes just now; "
                                   f"{total // 2} failed ({total // 2} scopes never synced); 1 account not reached")
            assert line.errors_text() == ("Failing: staging in global services, us-west-2 (sign in: aws sso login "
                                          "--profile staging-sso); dev (sign in: aws sso login --profile dev-sso)")
        finally:
            endpoint.stop()
