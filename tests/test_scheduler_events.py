"""The app's own syncs (app.estate.scheduler) and resource-change events turned into scopes to sync.

The schedule is driven by an injected clock and wait, so a day of schedule runs in milliseconds; the
one-sync-at-a-time and plan-never-waits rules are held on the real LocalService over moto, with a sync
held half-way by botocore's event hook (the seam app.awsclient.CLIENT_HOOKS gives tests)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from app.config import AccountConfig, Config, EventsConfig, Schedules, save_config
from app.estate.events import ScopeRef, drain, queue_region, scopes_from_event
from app.estate.scheduler import JITTER, POLL_S, RETRY_S, ScheduleBook, SyncBusy, SyncScheduler
from conftest import ROOT, wait_for_endpoint

CLI = [sys.executable, "-m", "app.interfaces.cli"]

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


# ---- the schedule, on a clock the test drives --------------------------------------------------------

class FakeClock:
    """``now()`` and a ``wait(seconds)`` that moves time on instead of sleeping; it stops the scheduler
    (returns True) once ``end`` is passed."""

    def __init__(self, start: datetime, end: datetime | None = None):
        self.now, self.end, self.waits = start, end, []

    def __call__(self) -> datetime:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += timedelta(seconds=seconds)
        return self.end is not None and self.now >= self.end


class Target:
    """What the scheduler drives, recording what it asked; the scopes it 'syncs' appear in its status
    rows as a real sync's would. ``busy`` makes every sync refuse like the endpoint's SyncBusy."""

    def __init__(self, clock: FakeClock, config: Config | None = None, scopes: int = 3):
        self.clock, self.config, self.n_scopes = clock, config or Config(), scopes
        self.calls: list[tuple[str, datetime]] = []
        self.rows: list[SimpleNamespace] = []
        self.busy = False

    def current_config(self) -> Config:
        return self.config

    def scope_statuses(self) -> list:
        return self.rows

    def _synced(self, kind: str) -> dict:
        if self.busy:
            raise SyncBusy("a sync is already running in the app; try again when it ends")
        self.calls.append((kind, self.clock()))
        self.rows = [SimpleNamespace(last_attempt=self.clock(), last_success=self.clock()) for _ in range(self.n_scopes)]
        return {"scopes": [{"ok": True}] * self.n_scopes, "errors": []}

    def sync(self, full: bool = False) -> dict:
        return self._synced("full" if full else "incremental")

    def sync_events(self) -> dict:
        if self.busy:
            raise SyncBusy("busy")
        self.calls.append(("events", self.clock()))
        return {"scopes": [], "errors": [], "events": 0}


def scheduler(target: Target, clock: FakeClock, book: ScheduleBook | None = None, delay: float = 20) -> SyncScheduler:
    return SyncScheduler(target, book=book, clock=clock, wait=clock.wait, rng=random.Random(7), first_delay_s=delay)


def test_a_day_of_schedule_full_every_6h_incremental_every_15min_jittered():
    clock = FakeClock(T0, end=T0 + timedelta(days=1))
    target = Target(clock)
    s = scheduler(target, clock)
    s.run_forever()
    fulls = [t for kind, t in target.calls if kind == "full"]
    syncs = [t for kind, t in target.calls if kind != "events"]
    assert fulls[0] == T0 + timedelta(seconds=20)  # an empty index: a full sync once the app is up
    assert 4 <= len(fulls) <= 5
    for a, b in zip(fulls, fulls[1:]):
        assert 6 * 3600 <= (b - a).total_seconds() <= 6 * 3600 * (1 + JITTER) + POLL_S
    assert 80 <= len(syncs) <= 97
    # Every incremental sync comes 15 min (+ up to 10 % jitter) after the sync before it, full or not.
    gaps = [(b - a).total_seconds() for (_, a), (kind, b) in zip(target.calls, target.calls[1:]) if kind == "incremental"]
    assert all(900 <= g <= 900 * (1 + JITTER) + POLL_S for g in gaps), gaps
    assert len({round(g) for g in gaps}) > 3  # jittered, not a fixed beat
    assert not [kind for kind, _ in target.calls if kind == "events"]  # no queue configured: never drained
    assert max(clock.waits) <= POLL_S  # never asleep for longer than a poll: config and stop are seen
    assert s.state()["last"]["kind"] in ("full", "incremental") and s.state()["last"]["outcome"] == "done"


def test_a_changed_schedule_applies_without_a_restart():
    clock = FakeClock(T0)
    target = Target(clock)
    s = scheduler(target, clock, delay=0)
    assert s.tick().kind == "full"
    clock.now += timedelta(minutes=10)
    assert s.tick() is None
    target.config = Config(schedules=Schedules(incremental_every_s=300))  # what PUT /v1/settings writes
    assert s.tick().kind == "incremental"  # 10 min > 5 min (+ at most 10 %)


def test_a_sync_already_running_is_skipped_not_queued_and_tried_again_later():
    clock = FakeClock(T0)
    target = Target(clock)
    s = scheduler(target, clock, delay=0)
    target.busy = True  # a manual sync holds the endpoint's sync lock
    run = s.tick()
    assert (run.kind, run.outcome) == ("full", "skipped") and "already running" in run.note
    assert target.calls == []
    clock.now += timedelta(seconds=RETRY_S - 1)
    assert s.due() is None  # not hammered while the other sync runs
    target.busy = False
    clock.now += timedelta(seconds=1)
    assert s.tick().outcome == "done" and target.calls == [("full", clock.now)]
    target.busy = True
    clock.now += timedelta(minutes=20)
    assert s.tick().outcome == "skipped"
    assert s.state()["last"]["kind"] == "full" and s.state()["last"]["outcome"] == "done"  # a skip is not news


def test_a_manual_sync_counts_as_incremental_and_a_restart_keeps_the_book(tmp_path):
    clock = FakeClock(T0)
    target = Target(clock)
    book = tmp_path / "schedule.json"
    s = scheduler(target, clock, book=ScheduleBook(book), delay=0)
    assert s.tick().kind == "full"
    assert oct(book.stat().st_mode & 0o777) == "0o600"
    clock.now += timedelta(minutes=14)
    target.sync()  # e.g. `cloudops sync` through the app: the status book shows it
    target.calls.clear()
    clock.now += timedelta(minutes=14)
    assert s.tick() is None  # 14 min after the manual sync: not due yet
    # A restart: a new scheduler with the same book and status rows has nothing due before the intervals.
    again = scheduler(target, clock, book=ScheduleBook(book), delay=0)
    full, _ = again.last()
    assert full == T0
    assert again.due() is None
    clock.now = T0 + timedelta(hours=7)
    assert again.tick().kind == "full"
    # A damaged book is an empty one: the status rows stand in for the last full sync.
    book.write_text("{not json")
    assert SyncScheduler(target, book=ScheduleBook(book), clock=clock, first_delay_s=0).last()[0] == clock.now


def test_a_sync_that_wrote_nothing_is_retried_at_the_next_interval_not_in_a_loop():
    """An empty index and a sync that fails before writing a scope (an expired SSO login): the next try
    is an interval away, not the next poll."""
    clock = FakeClock(T0)
    target = Target(clock)
    target.sync = lambda full=False: (target.calls.append(("x", clock())) or
                                      {"scopes": [], "errors": [{"scope": "prod/*/*", "account": "prod",
                                                                 "error": "run `aws sso login --profile prod`"}]})
    s = scheduler(target, clock, delay=0)
    run = s.tick()
    assert run.outcome == "failed" and run.errors[0]["account"] == "prod"
    assert s.state()["last"]["errors"][0]["account"] == "prod"
    clock.now += timedelta(minutes=5)
    assert s.tick() is None
    clock.now += timedelta(minutes=12)
    assert s.tick().kind == "incremental"


def test_events_are_drained_on_their_own_beat_when_a_queue_is_configured():
    clock = FakeClock(T0, end=T0 + timedelta(minutes=30))
    events = EventsConfig(queue_url="https://sqs.eu-west-1.amazonaws.com/111111111111/changes", account="prod")
    target = Target(clock, Config(accounts=[AccountConfig(name="prod")], events=events,
                                  schedules=Schedules(events_every_s=60)))
    s = scheduler(target, clock, delay=0)
    s.run_forever()
    drains = [t for kind, t in target.calls if kind == "events"]
    assert 20 <= len(drains) <= 31
    assert all(60 <= (b - a).total_seconds() <= 60 * (1 + JITTER) + 1e-6 or b - a == timedelta(0)
               for a, b in zip(drains, drains[1:]))
    # An empty drain is not news: the last run the tray sees is a sync.
    assert s.state()["last"]["kind"] in ("full", "incremental")


def test_stop_ends_the_loop_promptly_with_the_real_wait():
    clock_target = Target(FakeClock(T0))
    s = SyncScheduler(clock_target, first_delay_s=3600).start()  # real clock, real wait: nothing due for an hour
    assert s.stop(timeout=5) and not s._thread.is_alive()


# ---- events ---------------------------------------------------------------------------------------------

def test_events_name_scopes_and_garbage_is_ignored():
    event = {"source": "aws.ec2", "account": "111111111111", "region": "us-west-2",
             "detail-type": "EC2 Instance State-change Notification", "detail": {"state": "stopped"}}
    assert scopes_from_event(event) == {ScopeRef("111111111111", "us-west-2", "ec2")}
    tag = {"source": "aws.tag", "account": "111111111111", "region": "us-east-1", "detail": {"service": "s3"}}
    assert scopes_from_event(tag) == {ScopeRef("111111111111", "global", "s3")}
    assert scopes_from_event({"source": "evil", "account": "1", "region": "x"}) == set()
    assert scopes_from_event({"source": "aws.ec2", "account": "not-digits", "region": "x"}) == set()
    assert queue_region("https://sqs.eu-west-1.amazonaws.com/111111111111/q") == "eu-west-1"
    assert queue_region("http://127.0.0.1:5000/111111111111/q") is None


@mock_aws
def test_eventbridge_to_sqs_round_trip(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    url = sqs.create_queue(QueueName="cloudops-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="resource-changes", EventPattern=json.dumps({"source": ["aws.ec2", "aws.rds"]}))
    events.put_targets(Rule="resource-changes", Targets=[{"Id": "q", "Arn": arn}])
    events.put_events(Entries=[
        {"Source": "aws.rds", "DetailType": "RDS DB Instance Event", "Detail": json.dumps({"x": 1})},
        {"Source": "aws.ec2", "DetailType": "EC2 Instance State-change Notification", "Detail": json.dumps({"s": 1})},
    ])
    sqs.send_message(QueueUrl=url, MessageBody="not json at all")
    scopes = drain(sqs, url, default_account="123456789012")
    assert {s.service for s in scopes} == {"ec2", "rds"}
    assert all(s.region == "us-east-1" and s.account_id == "123456789012" for s in scopes)
    assert drain(sqs, url) == set()  # consumed


# ---- the real LocalService over moto: one sync at a time, and plans never wait for one -------------------

class HeldSync:
    """A botocore hook on every client the app makes: while armed, the first RDS call of a sync waits
    until released, so the sync is provably in progress (holding the sync lock) while the test acts."""

    def __init__(self):
        self.armed, self.entered, self.release = False, threading.Event(), threading.Event()

    def __call__(self, client, account_name) -> None:
        client.meta.events.register("before-call.rds", self._hold)

    def _hold(self, **_) -> None:
        if self.armed and not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(120), "the test never released the held sync"

    def arm(self) -> None:
        self.armed, self.release = True, threading.Event()
        self.entered.clear()


@pytest.fixture(scope="module")
def app_service(tmp_path_factory, stack):
    """The demo's production account in moto, a home whose config names it, and the endpoint's real
    LocalService (plan, sync, status) with the test's hook on its AWS clients, synced once."""
    from starlette.testclient import TestClient

    from app import awsclient
    from app.demo.demo_estate import DEMO_ACCOUNTS, demo_config, simulated_estate
    from app.interfaces.endpoint import LocalService, create_endpoint, new_token

    home = tmp_path_factory.mktemp("scheduler-home")
    saved = os.environ.get("CLOUDOPS_HOME")
    held = HeldSync()
    awsclient.CLIENT_HOOKS.append(held)
    with simulated_estate(DEMO_ACCOUNTS[:1]) as (endpoint_url, _):
        os.environ["CLOUDOPS_HOME"] = str(home)
        events_q = boto3.Session(profile_name="prod").client("sqs", region_name="us-west-2").create_queue(
            QueueName="cloudops-changes")["QueueUrl"]
        save_config(demo_config(DEMO_ACCOUNTS[:1]).model_copy(update={
            "events": EventsConfig(queue_url=events_q, account="production")}), home / "config.yaml")
        service = LocalService(lambda: stack)
        first = service.sync()
        assert not first["errors"], first["errors"]
        token = new_token()
        with TestClient(create_endpoint(service, token), base_url="http://127.0.0.1:8899") as client:
            client.headers["Authorization"] = f"Bearer {token}"
            yield SimpleNamespace(service=service, client=client, held=held, queue=events_q)
        service.estate.close()
    awsclient.CLIENT_HOOKS.remove(held)
    if saved is None:
        os.environ.pop("CLOUDOPS_HOME", None)
    else:
        os.environ["CLOUDOPS_HOME"] = saved


def test_a_plan_answers_while_a_scheduled_sync_runs_and_a_manual_sync_is_told_409(app_service):
    service, client, held = app_service.service, app_service.client, app_service.held
    s = SyncScheduler(service, first_delay_s=0)
    service.scheduler = s
    held.arm()
    runs: list = []
    worker = threading.Thread(target=lambda: runs.append(s.run_once("incremental")))
    worker.start()
    try:
        assert held.entered.wait(120), "the scheduled sync never reached AWS"
        assert client.get("/v1/status").json()["schedule"]["running"]["kind"] == "incremental"
        reply = client.post("/v1/plan", json={"prompt": "Stop pg-instance-main1"})
        assert reply.status_code == 200, reply.text
        plan = reply.json()
        assert plan["script"]["steps"][0]["operation"] == "StopDBInstance"
        assert worker.is_alive() and not held.release.is_set()  # the plan came back while the sync was held
        busy = client.post("/v1/sync", json={})
        assert busy.status_code == 409 and "already running" in busy.json()["error"]
    finally:
        held.release.set()
        worker.join(120)
        service.scheduler = None
    assert runs[0].outcome == "done" and runs[0].scopes > 0, runs[0]


def test_a_run_during_a_scheduled_sync_answers_at_once_and_its_scopes_are_read_after_it(app_service):
    """Executing a plan re-reads the scopes it touched; while a scheduled sync holds the sync lock, the run's
    answer does not wait for it: the scheduler re-reads those scopes right after its sync ends."""
    service, held = app_service.service, app_service.held
    s = SyncScheduler(service, first_delay_s=0)
    service.scheduler = s
    held.arm()
    runs: list = []
    worker = threading.Thread(target=lambda: runs.append(s.run_once("incremental")))
    worker.start()
    rds = boto3.Session(profile_name="prod").client("rds", region_name="us-west-2")
    try:
        assert held.entered.wait(120)
        plan = service.operations.plan(None, "reboot pg-instance-main1")
        approval = service.operations.approve(plan.request_id, confirm=plan.confirmation.phrase)
        report = service.operations.execute(plan.request_id, approval.approval_id)
        assert report.ok, report.as_json()
        assert "read again as soon as it ends" in report.index_note
        assert worker.is_alive() and not held.release.is_set()  # answered while the sync was held
    finally:
        held.release.set()
        worker.join(120)
        service.scheduler = None
    rows = {r.scope: r for r in service.scope_statuses()}
    refreshed = rows["111111111111/us-west-2/rds"].last_attempt.replace(tzinfo=timezone.utc)
    assert refreshed > runs[0].finished_at  # read again after the scheduled sync, by the deferred refresh
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier="pg-instance-main1")


def test_the_settings_page_changes_the_running_schedule(app_service):
    """PUT /v1/settings writes config.yaml; the scheduler reads it at its next look, no restart."""
    service, client = app_service.service, app_service.client
    s = SyncScheduler(service, first_delay_s=0)
    before = s.due_times()["incremental"]
    saved = client.get("/v1/settings").json()["schedules"]
    try:
        assert client.put("/v1/settings", json={"schedules": {"full_every_s": 3600, "incremental_every_s": 60}}).status_code == 200
        after = s.due_times()["incremental"]
        assert timedelta(minutes=13) < before - after < timedelta(minutes=16)
    finally:
        client.put("/v1/settings", json={"schedules": saved})


def test_the_scheduler_skips_while_a_manual_sync_runs(app_service):
    service, client, held = app_service.service, app_service.client, app_service.held
    s = SyncScheduler(service, first_delay_s=0)
    held.arm()
    replies: list = []
    manual = threading.Thread(target=lambda: replies.append(client.post("/v1/sync", json={})))
    manual.start()
    try:
        assert held.entered.wait(120)
        run = s.run_once("full")
        assert run.outcome == "skipped" and "already running" in run.note  # did not wait for the lock
        assert s.due() is None  # and is not retried before RETRY_S
    finally:
        held.release.set()
        manual.join(300)
    assert replies[0].status_code == 200


def test_resource_change_events_are_drained_and_their_scopes_synced(app_service):
    """A stopped database's event in the configured queue: the scheduler's events run re-reads that scope."""
    service = app_service.service
    rds = boto3.Session(profile_name="prod").client("rds", region_name="us-west-2")
    rds.stop_db_instance(DBInstanceIdentifier="pg-instance-main1")
    try:
        event = {"source": "aws.rds", "account": "111111111111", "region": "us-west-2",
                 "detail-type": "RDS DB Instance Event", "detail": {"SourceIdentifier": "pg-instance-main1"}}
        sqs = boto3.Session(profile_name="prod").client("sqs", region_name="us-west-2")
        sqs.send_message(QueueUrl=app_service.queue, MessageBody=json.dumps(event))
        s = SyncScheduler(service, first_delay_s=0)
        run = s.run_once("events")
        assert run.outcome == "done" and run.scopes == 1, run
        hits = app_service.client.post("/v1/search", json={"query": "pg-instance-main1"}).json()
        assert next(h for h in hits if h["name"] == "pg-instance-main1")["state"] == "stopped"
        assert s.run_once("events").scopes == 0  # drained
    finally:
        rds.start_db_instance(DBInstanceIdentifier="pg-instance-main1")


def test_the_headless_app_syncs_by_itself_and_stops_cleanly_on_sigterm_even_mid_sync(app_service, tmp_path):
    """`cloudops app --headless` on a home with accounts and no index starts a full sync by itself. SIGTERM in
    the middle of it ends the app (exit 0, endpoint.json gone); on another fresh home the app syncs the estate
    to the end on its own, the schedule book remembers the full sync, and the next one is not a full."""
    import httpx

    def start(home):
        home.mkdir(mode=0o700)
        shutil.copy(os.path.join(os.environ["CLOUDOPS_HOME"], "config.yaml"), home / "config.yaml")
        env = {**os.environ, "CLOUDOPS_HOME": str(home), "CLOUDOPS_SCHEDULE_DELAY_S": "0.1", "HF_HUB_OFFLINE": "1"}
        log = open(home / "app.log", "w")
        proc = subprocess.Popen(CLI + ["app", "--headless"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log)
        info = wait_for_endpoint(home, proc)
        return proc, log, info, {"Authorization": f"Bearer {info['token']}"}

    def status(info, headers) -> dict:
        return httpx.get(f"{info['url']}/v1/status", headers=headers, timeout=30).json()

    def until(check, timeout: float = 300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"not reached in {timeout} s")

    def stopped_cleanly(proc, home) -> None:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, (home / "app.log").read_text()[-3000:]
        assert not (home / "endpoint.json").exists()

    for home, mid_sync in ((tmp_path / "interrupted", True), (tmp_path / "synced", False)):
        proc, log, info, headers = start(home)
        try:
            if mid_sync:
                until(lambda: (status(info, headers)["schedule"]["running"] or {}).get("kind") == "full")
            else:
                last = until(lambda: status(info, headers)["schedule"]["last"])
                assert (last["kind"], last["outcome"]) == ("full", "done") and last["scopes"] > 0, last
                after = status(info, headers)
                assert after["documents"] > 0 and after["schedule"]["next"]["kind"] in ("incremental", "events")
                assert "full" in json.loads((home / "schedule.json").read_text())
            stopped_cleanly(proc, home)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
