"""The UI in a real browser (Debian's chromium driven by Playwright) against a real `cloudops app
--headless` process on a moto estate: what an operator does, checked in AWS (moto) and in the index.

One moto server, one app process and one browser for the whole module; each test gets a fresh browser
context, so the token is pasted again (sessionStorage is per tab). Approvals expire after
APPROVAL_TTL_S seconds in this app process (CLOUDOPS_APPROVAL_TTL_S) so that expiry is testable without
waiting ten minutes.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
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


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    """moto with the demo estate, config.yaml for its accounts, and `cloudops app --headless` synced on it."""
    from app.demo.demo_estate import demo_config, simulated_estate

    home = tmp_path_factory.mktemp("ui-home")
    proc = None
    with simulated_estate():
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
            yield {"url": info["url"], "token": info["token"], "home": home, "headers": headers}
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
    context = browser.new_context()
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
    expect(page.locator("#conn")).to_contain_text("connected")


def instance_state(profile: str, region: str, name: str) -> str:
    ec2 = boto3.Session(profile_name=profile).client("ec2", region_name=region)
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])["Reservations"]
    states = [i["State"]["Name"] for r in found for i in r["Instances"]]
    assert len(states) == 1, states
    return states[0]


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
    expect(page.locator("#approve")).to_be_focused()
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
    late = httpx.post(f"{app_env['url']}/v1/approve", json={"request_id": request_id}, headers=app_env["headers"])
    assert late.status_code == 404  # a denied plan cannot be approved afterwards
    page.goto(f"{app_env['url']}/#audit")
    row = page.locator(f"tr[data-kind=denial][data-request-id='{request_id}']")
    expect(row).to_contain_text("change freeze")


def test_expired_approval_is_refused(page, app_env):
    connect(page, app_env)
    page.fill("#prompt", "stop batch-worker-2")
    page.keyboard.press("Enter")
    expect(page.locator("article.plan pre code")).to_contain_text("aws ec2 stop-instances")
    page.click("#open-approval")
    expect(page.locator("#approve")).to_be_visible()
    page.click("#approve")
    expect(page.locator(".approval-status")).to_contain_text("Expires in")
    expect(page.locator("#run")).to_be_focused()
    page.wait_for_timeout((APPROVAL_TTL_S + 1) * 1000)
    page.click("#run")
    expect(page.locator(".error-box")).to_contain_text("expired")
    expect(page.locator(".approval-status")).to_contain_text("Approve again")
    assert instance_state("prod", "us-east-1", "batch-worker-2") == "running"
    refusal = [e for e in httpx.get(f"{app_env['url']}/v1/audit", headers=app_env["headers"]).json()
               if e["kind"] == "refusal"]
    assert refusal and "expired" in refusal[0]["detail"]


def test_explorer_counts_match_the_index(page, app_env):
    connect(page, app_env, "explorer")
    tree = page.locator("nav.tree")
    expect(tree.locator("button[data-scope=all]")).to_be_visible()
    db = sqlite3.connect(app_env["home"] / "index" / "resources.db")
    try:
        total = db.execute("SELECT count(*) FROM resource").fetchone()[0]
        by_account = dict(db.execute("SELECT account_name, count(*) FROM resource GROUP BY account_name").fetchall())
        by_region = {(a, r): n for a, r, n in db.execute(
            "SELECT account_name, region, count(*) FROM resource GROUP BY account_name, region").fetchall()}
        rds_prod_west = db.execute("SELECT count(*) FROM resource WHERE account_name='production' AND "
                                   "region='us-west-2' AND scope LIKE '%/rds'").fetchone()[0]
        stopped_instances = db.execute("SELECT count(*) FROM resource WHERE resource_type='ec2_instance' AND "
                                       "lower(state)='stopped'").fetchone()[0]
    finally:
        db.close()
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
    page.click("#sync-now")
    expect(page.locator("#toast")).to_contain_text("Sync done", timeout=300_000)


def test_settings_errors_name_the_field(page, app_env):
    connect(page, app_env, "settings")
    expect(page.locator("#server-url")).to_be_focused()
    page.fill("#full-every", "5")
    page.click("form.settings button[type=submit]")
    expect(page.locator("#full-every-error")).not_to_be_empty()
    expect(page.locator("#full-every")).to_have_attribute("aria-invalid", "true")
    page.fill("#full-every", "7200")
    page.check("#offline")
    page.click("form.settings button[type=submit]")
    expect(page.locator(".form-status")).to_contain_text("Saved")
    config = (app_env["home"] / "config.yaml").read_text()
    assert "offline: true" in config and "full_every_s: 7200" in config
    page.uncheck("#offline")
    page.click("form.settings button[type=submit]")
    expect(page.locator(".form-status")).to_contain_text("Saved")
