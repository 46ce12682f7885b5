"""The UI in a real browser (Debian's chromium driven by Playwright) against a real `cloudops app
--headless` process on a moto estate: what an operator does, checked in AWS (moto), in the audit trail
and in the index.

One moto server, one app process and one browser for the whole module; each test gets a fresh browser
context, so the token is pasted again (sessionStorage is per tab). Approvals expire after
APPROVAL_TTL_S seconds in this app process (CLOUDOPS_APPROVAL_TTL_S) so that expiry is testable without
waiting ten minutes. The outage test stops moto for real (its port refuses connections) and starts it
again on the same port; moto keeps its resources per process, so the estate is the same afterwards.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import boto3
import httpx
import pytest

from app.config import save_config
from conftest import ROOT, wait_for_endpoint

CHROMIUM = Path("/usr/bin/chromium")
APPROVAL_TTL_S = 8
pytestmark = pytest.mark.slow

if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium: install Debian's `chromium` package (apt-get install -y chromium, "
                "or packaging/system-deps.sh)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the `test` extra)")
expect = sync_api.expect
expect.set_options(timeout=30_000)  # two shared cores: planning and syncing can take seconds


class Moto:
    """The module's moto server, which the outage test takes down and brings back on the same port, and
    what build_estate put in it (the truth the explorer's counts are checked against)."""

    def __init__(self, server):
        self.server = server
        self.port = server.get_host_and_port()[1]
        self.summary = None

    def down(self) -> None:
        """Stop serving and close the listening socket, so AWS calls are refused (as with no network)."""
        self.server.stop()
        self.server._server.server_close()  # ThreadedMotoServer.stop() leaves the socket open

    def up(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()


@contextmanager
def demo_estate():
    """demo_estate.simulated_estate's set-up, keeping hold of moto's server for the outage test."""
    from app.demo.demo_estate import DEMO_ACCOUNTS, build_estate, reset_moto, start_moto, write_aws_config

    server, endpoint = start_moto()
    moto = Moto(server)
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="cloudops-ui-aws-") as aws_dir:
        try:
            reset_moto(endpoint)
            os.environ.update(write_aws_config(Path(aws_dir), DEMO_ACCOUNTS, endpoint))
            moto.summary = build_estate(DEMO_ACCOUNTS)
            yield moto
        finally:
            os.environ.clear()
            os.environ.update(saved)
            moto.server.stop()


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    """moto with the demo estate, config.yaml for its accounts, and `cloudops app --headless` synced on it."""
    from app.demo.demo_estate import demo_config

    home = tmp_path_factory.mktemp("ui-home")
    proc = None
    with demo_estate() as moto:
        try:
            os.environ["CLOUDOPS_HOME"] = str(home)
            save_config(demo_config(), home / "config.yaml")
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "CLOUDOPS_APPROVAL_TTL_S": str(APPROVAL_TTL_S),
                   "NO_PROXY": "127.0.0.1,localhost"}
            env.pop("DISPLAY", None)
            log = open(home / "app.log", "w")
            proc = subprocess.Popen([sys.executable, "-m", "app.interfaces.cli", "app", "--headless", "--port", "0"], env=env,
                                    cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            info = wait_for_endpoint(home, proc)
            headers = {"Authorization": f"Bearer {info['token']}"}
            try:
                report = httpx.post(f"{info['url']}/v1/sync", json={}, headers=headers, timeout=600).json()
                assert report["errors"] == [] and report["added"] > 80, report
                # Warm the agent stack (playbook index) so the first test does not pay for it inside a timeout.
                assert httpx.post(f"{info['url']}/v1/plan", json={"prompt": "describe bastion"}, headers=headers,
                                  timeout=300).status_code == 200
            except (httpx.HTTPError, AssertionError) as exc:
                log_tail = (home / "app.log").read_text()[-3000:]
                raise RuntimeError(f"app not ready ({exc!r}); its log: {log_tail}") from exc
            yield {"url": info["url"], "token": info["token"], "home": home, "headers": headers, "moto": moto}
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_env):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "401" not in msg.text else None)
    yield page
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
    assert not [e for e in errors if "TypeError" in e or "ReferenceError" in e or "SyntaxError" in e], errors


def connect(page, app_env, route: str = "ask") -> None:
    """Open the UI and paste the token into the form (what a plain-browser operator does)."""
    page.goto(f"{app_env['url']}/#{route}")
    expect(page.locator("#token-form")).to_be_visible()
    page.fill("#token-input", app_env["token"])
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-gate")).to_be_hidden()
    expect(page.locator("#conn")).to_have_text(re.compile(r"^connected"))


def instance_state(profile: str, region: str, name: str) -> str:
    ec2 = boto3.Session(profile_name=profile).client("ec2", region_name=region)
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])["Reservations"]
    states = [i["State"]["Name"] for r in found for i in r["Instances"]]
    assert len(states) == 1, states
    return states[0]


def audit(app_env, request_id: str | None = None) -> list[dict]:
    events = httpx.get(f"{app_env['url']}/v1/audit?limit=1000", headers=app_env["headers"]).json()
    return [e for e in events if request_id is None or e["request_id"] == request_id]


def plan_in_quick_ask(page, prompt: str) -> str:
    """Type ``prompt`` into Quick ask, press Enter, wait for the plan; its request id."""
    page.fill("#prompt", prompt)
    page.locator("#prompt").press("Enter")
    plan = page.locator("article.plan")
    expect(plan.locator("pre code").first).to_be_visible()
    return plan.get_attribute("data-request-id")


def press_everything(page) -> None:
    """What an operator might press by accident, on whatever has focus: single letters, Space, Enter,
    Ctrl+Enter (each alone)."""
    for key in ("a", "A", "y", "r", "d", " ", "Enter", "Control+Enter", "Meta+Enter"):
        page.keyboard.press(key)
    page.wait_for_timeout(1500)  # long enough for an approval and a run to have reached the audit trail


def test_no_token_in_url_and_csp(page, app_env):
    reply = httpx.get(f"{app_env['url']}/")
    assert "script-src 'self'" in reply.headers["content-security-policy"]
    page.goto(f"{app_env['url']}/")
    expect(page.locator("#token-form")).to_be_visible()  # no bridge, nothing stored: the paste form
    page.fill("#token-input", "wrong-token")
    page.keyboard.press("Enter")
    expect(page.locator("#token-error")).to_contain_text("refused")
    page.fill("#token-input", app_env["token"])
    page.keyboard.press("Enter")
    expect(page.locator("#prompt")).to_be_focused()
    assert app_env["token"] not in page.url
    assert page.evaluate("sessionStorage.getItem('cloudops.token')") == app_env["token"]
    assert page.evaluate("localStorage.length") == 0


def test_token_from_the_pywebview_bridge(page, app_env):
    """The desktop contract: window.pywebview.api.get_token() (a Promise), ready at `pywebviewready`."""
    page.add_init_script("""(() => {
        setTimeout(() => {
            window.pywebview = {api: {get_token: () => Promise.resolve(%s)}};
            window.dispatchEvent(new Event('pywebviewready'));
        }, 300);
    })();""" % json.dumps(app_env["token"]))
    page.goto(f"{app_env['url']}/#explorer")
    expect(page.locator("nav.tree button[data-scope=all]")).to_be_visible()
    expect(page.locator("#token-gate")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0  # the bridge's token is kept in memory only


def test_quick_ask_autocomplete_plan_approve_run(page, app_env):
    assert instance_state("staging", "us-east-1", "jenkins-controller") == "running"
    connect(page, app_env)
    prompt = page.locator("#prompt")
    prompt.press_sequentially("Stop jenk", delay=40)
    option = page.locator("#suggestions [role=option]", has_text="jenkins-controller")
    expect(option).to_be_visible()
    option.click()
    expect(prompt).to_have_value("Stop jenkins-controller ")
    prompt.press("Enter")
    plan = page.locator("article.plan")
    expect(plan.locator("pre code")).to_contain_text("aws ec2 stop-instances --instance-ids i-")
    expect(plan.locator("pre code")).to_contain_text("--region us-east-1 --profile staging")
    expect(plan.locator(".badge[data-risk]")).to_be_visible()
    expect(plan.locator("[data-testid=production-banner]")).to_have_count(0)  # staging
    expect(page.locator("#approve-run")).to_have_text("Stop jenkins-controller in staging")  # names the action
    page.click("#approve-run")
    expect(page.locator("[data-testid=run-outcome]")).to_have_attribute("data-ok", "true", timeout=120_000)
    expect(plan.locator(".step-status").first).to_have_text("succeeded")
    assert instance_state("staging", "us-east-1", "jenkins-controller") == "stopped"


def test_keyboard_only_quick_ask(page, app_env):
    assert instance_state("dev", "us-west-2", "ci-build-runner") == "stopped"
    page.goto(f"{app_env['url']}/#ask")
    expect(page.locator("#token-input")).to_be_focused()
    page.keyboard.type(app_env["token"])
    page.keyboard.press("Enter")
    expect(page.locator("#prompt")).to_be_focused()
    page.keyboard.type("Start ci-bu", delay=40)
    expect(page.locator("#suggestions [role=option]").first).to_be_visible()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#prompt")).to_have_attribute("aria-activedescendant", "suggestion-0")
    expect(page.locator("#suggestion-0")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Tab")  # takes the suggestion, stays in the box
    expect(page.locator("#prompt")).to_have_value("Start ci-build-runner ")
    expect(page.locator("#prompt")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    expect(page.locator("article.plan pre code")).to_contain_text("aws ec2 start-instances")
    expect(page.locator("#approve-run")).to_be_enabled()
    page.keyboard.press("Control+Enter")
    expect(page.locator("[data-testid=run-outcome]")).to_have_attribute("data-ok", "true", timeout=120_000)
    assert instance_state("dev", "us-west-2", "ci-build-runner") == "running"
    # Tab order reaches the actions, and focus is visible there.
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement && document.activeElement.matches(':focus-visible')")
    assert focused


def test_ambiguous_name_asks_and_the_answer_plans(page, app_env):
    connect(page, app_env)
    page.fill("#prompt", "delete orders-db")
    page.keyboard.press("Enter")
    expect(page.locator(".clarify .question")).to_contain_text("Which one")
    expect(page.locator("#approve-run")).to_be_disabled()  # a question is not a plan
    page.locator(".clarify button", has_text="staging").click()
    expect(page.locator("#prompt")).to_have_value(re.compile(r"^delete orders-db in staging "))
    expect(page.locator("article.plan pre code")).to_contain_text("aws rds delete-db-instance")
    expect(page.locator("article.plan pre code")).to_contain_text("--profile staging")
    expect(page.locator("[data-testid=production-banner]")).to_have_count(0)
    expect(page.locator(".badge[data-risk]")).to_have_attribute("data-risk", re.compile("high|critical"))
    expect(page.locator("#approve-run")).to_be_enabled()
    page.fill("#prompt", "delete orders-db in production")  # edited: the plan on screen is stale
    expect(page.locator("#approve-run")).to_be_disabled()
    expect(page.locator("#stale-note")).to_be_visible()


def test_deny_changes_nothing_and_is_audited(page, app_env):
    connect(page, app_env)
    page.fill("#prompt", "stop batch-worker-1")
    page.keyboard.press("Enter")
    expect(page.locator("article.plan pre code")).to_contain_text("aws ec2 stop-instances")
    page.click("#open-approval")
    expect(page).to_have_url(re.compile(r"#plan/[A-Za-z0-9_.:-]+$"))
    banner = page.locator("[data-testid=production-banner]")
    expect(banner).to_contain_text("PRODUCTION")
    expect(banner).to_contain_text("batch-worker-1")
    expect(page.locator(".approval h1")).to_be_focused()  # the top of the plan, never a button
    expect(page.locator(".dry-run").first).to_contain_text("Dry run:")
    command = page.locator("li.step pre code").first.inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_env["url"])
    page.locator("li.step button", has_text="Copy").first.click()
    expect(page.locator("#toast")).to_have_text("Command copied")
    assert page.evaluate("navigator.clipboard.readText()") == command
    page.fill("#deny-reason", "change freeze")
    page.click("#deny")
    expect(page.locator("[data-testid=denied]")).to_be_visible()
    expect(page.locator("#approve")).to_be_disabled()
    request_id = page.url.rsplit("/", 1)[-1]
    assert instance_state("prod", "us-east-1", "batch-worker-1") == "running"
    late = httpx.post(f"{app_env['url']}/v1/approve", json={"request_id": request_id, "confirm": "batch-worker-1"},
                      headers=app_env["headers"])
    assert late.status_code == 409 and "denied" in late.json()["error"]  # a denied plan cannot be approved afterwards
    page.goto(f"{app_env['url']}/#audit")
    row = page.locator(f"tr[data-kind=denial][data-request-id='{request_id}']")
    expect(row).to_contain_text("change freeze")


def test_expired_approval_is_refused(page, app_env):
    connect(page, app_env)
    page.fill("#prompt", "stop batch-worker-2")
    page.keyboard.press("Enter")
    expect(page.locator("article.plan pre code")).to_contain_text("aws ec2 stop-instances")
    page.click("#open-approval")
    expect(page.locator("#approve")).to_be_disabled()  # production: the name first
    page.fill("#approval-confirm", "batch-worker-2")
    page.click("#approve")
    expect(page.locator(".approval-status")).to_contain_text("Expires in")
    expect(page.locator(".approval-status")).to_be_focused()  # announced; Run now is pressed by the operator
    page.wait_for_timeout((APPROVAL_TTL_S + 1) * 1000)
    page.click("#run")
    expect(page.locator(".error-box")).to_contain_text("expired")
    expect(page.locator(".approval-status")).to_contain_text("Approve again")
    expect(page.locator("#approval-confirm")).to_be_enabled()  # approving again takes the name again
    assert instance_state("prod", "us-east-1", "batch-worker-2") == "running"
    refusal = [e for e in httpx.get(f"{app_env['url']}/v1/audit", headers=app_env["headers"]).json()
               if e["kind"] == "refusal"]
    assert refusal and "expired" in refusal[0]["detail"]


def test_explorer_counts_match_the_estate(page, app_env):
    """The explorer's counts are what moto holds (build_estate's summary, and EC2 asked directly)."""
    from collections import Counter

    from agent.protocol import RESOURCE_TYPES
    from app.demo.demo_estate import DEMO_ACCOUNTS

    connect(page, app_env, "explorer")
    tree = page.locator("nav.tree")
    expect(tree.locator("button[data-scope=all]")).to_be_visible()
    counts = app_env["moto"].summary.counts
    total = sum(counts.values())
    by_account, by_region = Counter(), Counter()
    for (account, region, _type), n in counts.items():
        by_account[account] += n
        by_region[account, region] += n
    rds_prod_west = sum(n for (a, r, t), n in counts.items()
                        if a == "production" and r == "us-west-2" and RESOURCE_TYPES.get(t) == "rds")
    stopped_instances = sum(
        1 for account in DEMO_ACCOUNTS for region in account.regions
        for reservation in boto3.Session(profile_name=account.profile).client("ec2", region_name=region)
        .describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}])["Reservations"]
        for _ in reservation["Instances"])
    assert tree.locator("button[data-scope=all]").get_attribute("data-count") == str(total)
    for account, n in by_account.items():
        node = tree.locator(f"button[data-account='{account}']:not([data-region])")
        assert node.get_attribute("data-count") == str(n), account
    for (account, region), n in by_region.items():
        node = tree.locator(f"button[data-account='{account}'][data-region='{region}']:not([data-service])")
        assert node.get_attribute("data-count") == str(n), (account, region)
    # The tree is one tab stop; arrows move, Enter picks (and the focus stays on the picked node).
    tree.locator("button[data-scope=all]").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    first_account = tree.locator("button.node.on")
    expect(first_account).to_be_focused()
    expect(page.locator(".results h2")).to_have_text(f"{first_account.get_attribute('data-count')} resources")
    assert tree.locator("button.node[tabindex='0']").count() == 1
    tree.locator("button[data-account=production][data-region=us-west-2][data-service=rds]").click()
    expect(page.locator(".results h2")).to_have_text(f"{rds_prod_west} resources")
    page.locator(".results button.link", has_text="pg-instance-main1").click()
    expect(page.locator("[data-testid=resource-document]")).to_contain_text('"engine": "postgres"')
    page.click("text=Clear filters")
    page.select_option("#filter-type", "ec2_instance")
    page.select_option("#filter-state", "stopped")
    expect(page.locator(".results h2")).to_have_text(f"{stopped_instances} resource{'' if stopped_instances == 1 else 's'}")
    expect(page.locator(".results tbody tr")).to_have_count(stopped_instances)
    page.click("text=Clear filters")
    tree.locator("button[data-account=production][data-region=us-west-2][data-service=rds]").click()
    page.locator(".results button.link", has_text="pg-instance-main1").click()
    expect(page.locator("[data-testid=resource-document]")).to_contain_text('"engine": "postgres"')
    # Search through the hybrid lookup, and sync status per scope.
    page.fill("#explorer-search", "env=prod AND app=main")
    page.keyboard.press("Enter")
    expect(page.locator(".results h2")).to_contain_text("Search:")
    expect(page.locator(".results tbody tr", has_text="pg-instance-main1")).to_have_count(1)
    expect(page.locator(".results tbody tr", has_text="orders-db")).to_have_count(0)
    expect(page.locator(".sync-status tbody tr")).to_have_count(
        len(httpx.get(f"{app_env['url']}/v1/status", headers=app_env["headers"]).json()["scopes"]))
    expect(page.locator(".sync-progress")).to_contain_text(  # the app's own schedule
        re.compile(r"Next (full|incremental|events) sync at|A scheduled \w+ sync is running"))
    page.click("#sync-now")
    expect(page.locator("#toast")).to_contain_text("Sync done", timeout=300_000)
    expect(page.locator(".sync-progress")).to_contain_text(re.compile(r"Sync done in \d+ s: 0 added"))


def test_settings_errors_name_the_field(page, app_env):
    connect(page, app_env, "settings")
    expect(page.locator("#server-url")).to_be_focused()
    page.fill("#full-every", "5")
    page.click("form.settings button[type=submit]")
    expect(page.locator("#full-every-error")).to_contain_text("at least 60")
    expect(page.locator("#full-every")).to_have_attribute("aria-invalid", "true")
    page.fill("#full-every", "7200")
    page.fill("#server-url", "ftp://agent.example.com")
    page.click("form.settings button[type=submit]")
    expect(page.locator("#server-url-error")).to_contain_text("must start with http:// or https://")
    expect(page.locator(".form-status")).to_contain_text("Not saved: one setting needs a change")
    text = page.locator("main").inner_text()
    assert "pattern" not in text and "SettingsUpdate" not in text and "^(" not in text, text
    page.fill("#server-url", "")
    page.fill("#full-every", "7200")
    page.check("#offline")
    page.click("form.settings button[type=submit]")
    expect(page.locator(".form-status")).to_contain_text("Saved")
    config = (app_env["home"] / "config.yaml").read_text()
    assert "offline: true" in config and "full_every_s: 7200" in config
    page.uncheck("#offline")
    page.click("form.settings button[type=submit]")
    expect(page.locator(".form-status")).to_contain_text("Saved")


# ---- issue 15: approval that cannot be given by accident, runs once, results you can read --------------

def test_critical_production_plan_has_no_shortcut_and_needs_the_name_typed(page, app_env):
    assert instance_state("prod", "us-west-2", "web-server-2") == "running"
    connect(page, app_env)
    request_id = plan_in_quick_ask(page, "terminate web-server-2 in production")
    expect(page.locator(".badge[data-risk]")).to_have_attribute("data-risk", "critical")
    expect(page.locator("[data-testid=production-banner]")).to_contain_text("web-server-2")
    # Ctrl+Enter in the prompt, then every key on the page: nothing is approved (or even asked for).
    page.locator("#prompt").press("Control+Enter")
    page.locator("article.plan .explain").first.click()
    press_everything(page)
    assert [e["kind"] for e in audit(app_env, request_id)] == ["plan"]
    expect(page.locator("#key-note")).to_contain_text("Ctrl+Enter does not run a critical plan")
    run = page.locator("#approve-run")
    expect(run).to_have_text("Terminate web-server-2 in production")
    expect(run).to_be_disabled()
    confirm = page.locator("#ask-confirm")
    # The hint says which box (not "the box above", read as the prompt box) and takes the operator there:
    # at the window's size the approval box is below the fold of the plan card.
    hint = page.locator("#ready-hint")
    expect(hint).to_contain_text("type web-server-2 in the plan's approval box")
    page.locator("#prompt").focus()
    hint.click()
    expect(confirm).to_be_focused()
    expect(confirm).to_be_in_viewport()
    expect(page.locator(".confirm-box code")).to_contain_text("aws ec2 terminate-instances --instance-ids i-")
    expect(page.locator(".confirm-box")).to_contain_text("To approve, type web-server-2")
    confirm.fill("web-server")  # not the name
    expect(run).to_be_disabled()
    confirm.press("Control+Enter")
    confirm.press("Enter")
    page.wait_for_timeout(1000)
    assert [e["kind"] for e in audit(app_env, request_id)] == ["plan"]
    assert instance_state("prod", "us-west-2", "web-server-2") == "running"

    # The API refuses the approval without the typed name, and with a wrong one.
    for body in ({}, {"confirm": "web-server"}):
        refused = httpx.post(f"{app_env['url']}/v1/approve", json={"request_id": request_id, **body},
                             headers=app_env["headers"])
        assert refused.status_code == 409 and "type 'web-server-2'" in refused.json()["error"], refused.text

    confirm.fill("web-server-2")
    expect(run).to_be_enabled()
    expect(hint).to_be_hidden()
    confirm.press("Control+Enter")  # still no shortcut, even with the name typed
    page.wait_for_timeout(1000)
    assert "approval" not in [e["kind"] for e in audit(app_env, request_id)]
    run.click()
    expect(page.locator("[data-testid=run-outcome]")).to_have_attribute("data-ok", "true", timeout=120_000)
    expect(page.locator("[data-testid=run-outcome]")).to_be_focused()  # focus goes to what happened
    expect(page.locator("[data-testid=approval-note]")).to_contain_text("This plan ran")
    expect(page.locator("#approve-run")).to_be_hidden()
    assert instance_state("prod", "us-west-2", "web-server-2") in ("shutting-down", "terminated")
    approval = next(e for e in audit(app_env, request_id) if e["kind"] == "approval")
    assert approval["detail"] == "typed 'web-server-2'"
    # A plan runs once: a second approve or execute is refused by the service.
    again = httpx.post(f"{app_env['url']}/v1/execute", json={"request_id": request_id}, headers=app_env["headers"])
    assert again.status_code == 409 and "already ran" in again.json()["error"]
    again = httpx.post(f"{app_env['url']}/v1/approve", json={"request_id": request_id, "confirm": "web-server-2"},
                       headers=app_env["headers"])
    assert again.status_code == 409 and "already ran" in again.json()["error"]


def test_approval_view_opens_at_the_top_and_no_key_approves(browser, app_env):
    """At 800x600, as in the issue: the PRODUCTION banner, the CRITICAL badge and the exact command are
    on the first screen, above the buttons; no key approves, denies or runs the purge."""
    context = browser.new_context(viewport={"width": 800, "height": 600})
    page = context.new_page()
    try:
        connect(page, app_env)
        request_id = plan_in_quick_ask(page, "purge the payments-queue")
        page.click("#open-approval")
        expect(page).to_have_url(re.compile(f"#plan/{request_id}$"))
        heading = page.locator(".approval h1")
        expect(heading).to_be_focused()
        assert page.evaluate("window.scrollY") == 0
        banner = page.locator("[data-testid=production-banner]")
        badge = page.locator(".badge[data-risk]")
        command = page.locator("li.step pre code").first
        expect(badge).to_have_attribute("data-risk", "critical")
        expect(command).to_contain_text("aws sqs purge-queue")
        approve = page.locator("#approve")
        for element in (banner, badge, command):
            box = element.bounding_box()
            assert box and 0 <= box["y"] and box["y"] + box["height"] <= 600, (element, box)
            assert box["y"] < approve.bounding_box()["y"]  # read before the buttons
        expect(approve).to_have_text("Approve: Purge payments-queue in production")
        expect(approve).to_be_disabled()

        press_everything(page)
        page.locator("body").click(position={"x": 5, "y": 300})
        press_everything(page)
        assert [e["kind"] for e in audit(app_env, request_id)] == ["plan"]
        expect(page.locator("[data-testid=denied]")).to_have_count(0)
        refused = httpx.post(f"{app_env['url']}/v1/approve", json={"request_id": request_id}, headers=app_env["headers"])
        assert refused.status_code == 409, refused.text

        page.fill("#deny-reason", "not today")
        page.click("#deny")
        expect(page.locator("[data-testid=denied]")).to_be_focused()
        expect(page.locator("[data-testid=approval-note]")).to_contain_text("Denied")
        expect(page.locator(".approval-actions")).to_be_hidden()
    finally:
        context.close()


def test_a_plan_runs_once_and_every_view_shows_it_done(browser, app_env):
    """Quick ask and the approval view of one plan, in two tabs: after Approve and Run in the approval
    view, Quick ask shows the plan done with its report, and nothing offers to run it again."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    ask, approval = context.new_page(), context.new_page()
    try:
        connect(ask, app_env)
        request_id = plan_in_quick_ask(ask, "reboot web-server-1 in production")
        expect(ask.locator("#approve-run")).to_have_text("Reboot web-server-1 in production")
        connect(approval, app_env, f"plan/{request_id}")
        approval.fill("#approval-confirm", "web-server-1")
        approval.click("#approve")
        expect(approval.locator("#run")).to_have_text("Run now: Reboot web-server-1 in production")
        approval.click("#run")
        expect(approval.locator("[data-testid=run-outcome]")).to_have_attribute("data-ok", "true", timeout=120_000)
        expect(approval.locator("[data-testid=run-outcome]")).to_be_focused()
        expect(approval.locator("[data-testid=approval-note]")).not_to_contain_text("Needs your approval")
        expect(approval.locator(".approval-actions")).to_be_hidden()

        ask.bring_to_front()
        ask.evaluate("window.dispatchEvent(new Event('focus'))")  # what the desktop window gets
        expect(ask.locator("[data-testid=approval-note]")).to_contain_text("ran (from another window)")
        expect(ask.locator("[data-testid=run-outcome]")).to_have_attribute("data-ok", "true")
        expect(ask.locator("#approve-run")).to_be_hidden()
        expect(ask.locator("#ask-confirm")).to_have_count(0)
        ask.locator("#prompt").press("Control+Enter")
        ask.wait_for_timeout(1000)
        steps = [e for e in audit(app_env, request_id) if e["kind"] == "step"]
        assert [e["operation"] for e in steps] == ["RebootInstances"]  # once
        again = httpx.post(f"{app_env['url']}/v1/execute", json={"request_id": request_id}, headers=app_env["headers"])
        assert again.status_code == 409
    finally:
        context.close()


def test_describe_shows_its_data_as_text(page, app_env):
    """A describe's response as facts, every field as a tree and the raw JSON; a tag value that looks
    like markup is shown as characters, never parsed."""
    ec2 = boto3.Session(profile_name="dev").client("ec2", region_name="us-west-2")
    bastion = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["bastion"]}])["Reservations"][0]["Instances"][0]
    markup = '<img src=x onerror="window.__owned=1">'
    ec2.create_tags(Resources=[bastion["InstanceId"]], Tags=[{"Key": "note", "Value": markup}])
    connect(page, app_env)
    request_id = plan_in_quick_ask(page, "describe bastion in dev")
    expect(page.locator("#approve-run")).to_have_text("Run (read-only)")
    page.locator("#prompt").press("Control+Enter")  # read-only and low risk: the shortcut runs it
    result = page.locator("[data-testid=read-result]")
    expect(result).to_be_visible(timeout=120_000)
    facts = result.locator(".output-facts").first
    expect(facts).to_contain_text("InstanceId")
    expect(facts).to_contain_text(bastion["InstanceId"])
    expect(facts).to_contain_text("t3.nano")
    expect(facts).to_contain_text("running")
    expect(result).to_contain_text(markup)
    result.locator("summary", has_text="Every field").click()
    expect(result.locator(".json-tree")).to_contain_text("Reservations")
    raw = result.locator("[data-testid=raw-json]")
    expect(raw).to_be_hidden()
    result.locator("summary", has_text="Raw JSON").click()
    expect(raw).to_contain_text(f'"InstanceId": "{bastion["InstanceId"]}"')
    assert page.evaluate("window.__owned") is None
    assert result.locator("img").count() == 0
    assert [e["outcome"] for e in audit(app_env, request_id) if e["kind"] == "step"] == ["succeeded"]

    # A listing (one describe per database): one table of what was asked for, above the steps.
    plan_in_quick_ask(page, "list the databases in staging")
    page.click("#approve-run")
    table = page.locator("[data-testid=combined-result]")
    expect(table.locator("h3")).to_have_text("DescribeDBInstances: 2 items from 2 calls", timeout=120_000)
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr", has_text="orders-db")).to_contain_text("postgres")
    expect(table.locator("tbody tr", has_text="qa-mysql-01")).to_contain_text("stopped")


def test_data_age_on_every_screen_that_shows_a_resource(page, app_env):
    connect(page, app_env)
    plan_in_quick_ask(page, "is the bastion in dev running?")  # answered from the index, with its age
    expect(page.locator("[data-testid=answer]")).to_contain_text(re.compile(r"running.*synced (just now|\d+ min ago)"))
    plan_in_quick_ask(page, "stop pg-instance-main1")
    expect(page.locator("[data-testid=plan-age]")).to_contain_text(re.compile(r"data synced (just now|\d+ min ago)"))
    expect(page.locator("[data-testid=target]", has_text="pg-instance-main1")).to_contain_text(re.compile("synced"))
    page.goto(f"{app_env['url']}/#explorer")
    rows = page.locator(".results tbody tr")
    expect(rows.first).to_contain_text(re.compile(r"synced (just now|\d+ min ago)"))
    page.fill("#explorer-search", "orders-db")
    page.keyboard.press("Enter")
    expect(page.locator(".results h2")).to_contain_text("Search:")
    hit = page.locator(".results tbody tr", has_text="orders-db").first
    expect(hit).to_contain_text("synced")
    hit.locator("button.link").click()
    expect(page.locator(".document [data-field=Data]")).to_contain_text(re.compile(r"synced (just now|\d+ min ago)"))


def test_explorer_document_wraps_and_a_tree_click_keeps_the_results_in_view(page, app_env):
    connect(page, app_env, "explorer")
    tree = page.locator("nav.tree")
    expect(tree.locator("button[data-scope=all]")).to_be_visible()
    # The last node of the tree (far below the results on a long estate page).
    last = tree.locator("button.node").last
    last.click()
    heading = page.locator(".results h2")
    expect(heading).to_have_text(re.compile(r"\d+ resources?"))
    box = heading.bounding_box()
    assert box and 0 <= box["y"] < 800, box
    page.locator(".results button.link").first.click()
    expect(page.locator("[data-testid=resource-document]")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    # Opening a long document (an ARN, a JSON body) still fits the width.
    page.click("text=Clear filters")
    page.locator(".results button.link", has_text="pg-instance-main1").click()
    expect(page.locator("[data-testid=resource-document]")).to_contain_text('"engine": "postgres"')
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_searching_a_name_that_is_not_there_says_so(page, app_env):
    connect(page, app_env, "explorer")
    page.fill("#explorer-search", "pg-instance-main9")
    page.keyboard.press("Enter")
    expect(page.locator("[data-testid=search-heading]")).to_contain_text("No resource is named “pg-instance-main9”")


def test_audit_rows_name_the_resource_the_account_and_who_approved(page, app_env):
    connect(page, app_env)
    request_id = plan_in_quick_ask(page, "reboot web-server-1 in staging")
    page.click("#approve-run")
    expect(page.locator("[data-testid=run-outcome]")).to_have_attribute("data-ok", "true", timeout=120_000)
    page.goto(f"{app_env['url']}/#audit")
    approval = page.locator(f"tr[data-kind=approval][data-request-id='{request_id}']")
    expect(approval.locator("[data-col=resource]")).to_have_text("web-server-1")
    expect(approval.locator("[data-col=account]")).to_contain_text("staging")
    expect(approval.locator("[data-col=actor]")).to_contain_text("(app)")
    step = page.locator(f"tr[data-kind=step][data-request-id='{request_id}']")
    expect(step.locator("[data-col=account]")).to_have_text("staging · us-west-2")  # the name, not 222222222222
    expect(step.locator("[data-col=actor]")).to_contain_text("approved by")


def test_the_header_says_disconnected_when_the_app_is_gone(page, tmp_path):
    """A second real app (no estate needed) that is stopped while the page is open."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost"}
    env.pop("DISPLAY", None)
    log = open(home / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "app.interfaces.cli", "app", "--headless", "--port", "0"], env=env,
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        info = wait_for_endpoint(home, proc)
        connect(page, {"url": info["url"], "token": info["token"]}, "settings")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        expect(page.locator("#conn")).to_have_text("disconnected", timeout=15_000)
        expect(page.locator("#conn")).to_have_class(re.compile(r"\bbad\b"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_failed_sync_is_said_in_sentences_and_its_plans_need_an_acknowledgement(page, app_env):
    """AWS unreachable (moto stopped: connections refused) during a sync of dev's EC2 scopes: the pages
    say so in one sentence per account and region, and a plan on a resource there carries the warning and
    cannot run without the acknowledgement. Runs last of the module's tests; moto and the scopes are
    restored after it."""
    moto = app_env["moto"]
    moto.down()
    try:
        report = httpx.post(f"{app_env['url']}/v1/sync", json={"account": "dev", "service": "ec2"},
                            headers=app_env["headers"], timeout=600).json()
        assert {e["region"] for e in report["errors"]} == {"us-west-2", "us-east-1"}, report
        connect(page, app_env)
        expect(page.locator("[data-testid=sync-alert]")).to_contain_text("Some data may be out of date")
        request_id = plan_in_quick_ask(page, "reboot bastion in dev")
        expect(page.locator("[data-testid=stale-banner]")).to_contain_text("the last sync of dev/us-west-2/ec2 failed")
        run = page.locator("#approve-run")
        expect(run).to_be_disabled()
        page.locator("#prompt").press("Control+Enter")
        expect(page.locator("#key-note")).to_contain_text("out of date")
        page.wait_for_timeout(1000)
        assert [e["kind"] for e in audit(app_env, request_id)] == ["plan"]
        refused = httpx.post(f"{app_env['url']}/v1/approve", json={"request_id": request_id}, headers=app_env["headers"])
        assert refused.status_code == 409 and "out of date" in refused.json()["error"]
        page.check("[data-testid=stale-ack]")
        expect(run).to_be_enabled()  # acknowledged: the button (not a key) may approve it

        page.goto(f"{app_env['url']}/#explorer")
        failures = page.locator("[data-testid=sync-failures]")
        expect(failures.locator("li")).to_have_count(2)
        sentence = failures.locator("li[data-account=dev][data-region=us-west-2]")
        expect(sentence).to_contain_text("dev in us-west-2: the last sync failed for ec2: AWS could not be reached")
        expect(sentence).to_contain_text("its data is from")
        assert "EndpointConnectionError" not in failures.inner_text()  # words, not a log line
        assert failures.bounding_box()["y"] < page.locator(".explorer-grid").bounding_box()["y"]  # top of the page
        page.fill("#explorer-search", "bastion")
        page.keyboard.press("Enter")
        expect(page.locator(".results tbody tr", has_text="dev").first).to_contain_text("last sync failed")
    finally:
        moto.up()
        report = httpx.post(f"{app_env['url']}/v1/sync", json={"account": "dev", "service": "ec2"},
                            headers=app_env["headers"], timeout=600).json()
        assert report["errors"] == [], report
