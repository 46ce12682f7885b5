// The approval view (#plan/<request_id>): the whole plan first (production banner, risk badge, the
// exact commands), the dry run where AWS offers one, then the decision: what approving takes
// (gate.js: a button naming the action; the name typed for critical or production plans; an
// acknowledgement when the data may be out of date), Approve (an approval pinned to this plan,
// expiring) and Run, or Deny. No single key approves, runs or denies. A plan runs once: when it ran
// or was denied anywhere (Quick ask, another window), this view says so and offers nothing to press.

import {api} from '../api.js';
import {errorBox, h, replace} from '../dom.js';
import {actionLabel, confirmationGate} from '../gate.js';
import {canRun, executePlan, fetchPlanView, finished, isMutating, markFinished, renderPlan, showDryRun, showReport,
  watchPlan} from '../plan.js';

function countdown(expiresAt, el, onExpired) {
  const tick = () => {
    const left = Math.round((new Date(expiresAt).getTime() - Date.now()) / 1000);
    if (left <= 0) {
      el.textContent = 'This approval has expired: approve again to run.';
      el.classList.add('error');
      onExpired();
      return false;
    }
    el.textContent = `Approved. Expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')} (at ${new Date(expiresAt).toLocaleTimeString()}). Press Run now to run it.`;
    return true;
  };
  tick();
  const timer = setInterval(() => { if (!tick()) clearInterval(timer); }, 1000);
  return () => clearInterval(timer);
}

export async function render(view, {requestId}) {
  let shown;
  replace(view, h('p', {class: 'muted'}, 'Loading the plan…'));
  try {
    shown = await fetchPlanView(requestId);
  } catch (err) {
    replace(view, h('section', {class: 'approval'}, h('h1', {}, 'Approve plan'),
      errorBox(err.status === 404 ? {message: 'This plan is not in this session: it was made by an earlier launch of the app, or forgotten. Ask again from Quick ask.'} : err),
      h('p', {}, h('a', {href: '#ask'}, 'Back to Quick ask'))));
    view.querySelector('a').focus();
    return null;
  }
  const plan = shown.plan;
  const card = renderPlan(plan, shown.production);
  const action = actionLabel(plan, shown.production);
  const mutating = isMutating(plan);
  const gate = confirmationGate(plan, 'approval');
  const status = h('p', {class: 'approval-status', role: 'status', 'aria-live': 'polite', tabindex: '-1'});
  const approveButton = h('button', {type: 'button', class: shown.production.length && mutating ? 'primary danger-action' : 'primary',
    id: 'approve'}, mutating ? `Approve: ${action}` : action);
  const runButton = h('button', {type: 'button', class: 'primary', id: 'run', hidden: true}, `Run now: ${action}`);
  const reason = h('input', {id: 'deny-reason', type: 'text', maxlength: '500', placeholder: 'optional',
    autocomplete: 'off'});
  const denyButton = h('button', {type: 'button', class: 'danger', id: 'deny'}, 'Deny');
  const ttl = Math.round(shown.approval_ttl_s / 60);
  const heading = h('h1', {tabindex: '-1'}, 'Approve plan');
  const decision = h('section', {class: 'approval-actions', 'aria-labelledby': 'decision-title'},
    h('h2', {id: 'decision-title'}, 'Your decision'),
    gate.element,
    status,  // before the buttons: after Approve, focus lands here and the next Tab is Run now
    h('div', {class: 'actions'}, approveButton, runButton, denyButton),
    h('div', {class: 'field inline'}, h('label', {for: 'deny-reason'}, 'Reason to deny'), reason),
    h('p', {class: 'hint'}, mutating
      ? `An approval is for this exact plan, used once, and expires after ${ttl >= 1 ? `${ttl} min` : `${shown.approval_ttl_s} s`}. `
      : 'Read-only: nothing changes in AWS. ',
    h('kbd', {}, 'Esc'), ' goes back.'));
  const back = h('p', {}, h('a', {href: '#ask'}, 'Back to Quick ask'));
  replace(view, h('section', {class: 'approval'}, heading, card, canRun(plan) ? decision : null, back));

  let approvalId = null;
  let stopCountdown = () => {};
  let done = false;  // nothing may be pressed any more
  let settled = false;  // ran or denied for good: nothing more to watch
  let here = false;  // this view is running the plan: its report arrives with the answer

  const setReady = () => {
    if (done) return;
    approveButton.disabled = !gate.ready();
  };
  gate.onChange(() => { setReady(); if (gate.ready()) approveButton.scrollIntoView({block: 'nearest'}); });
  setReady();

  /** Nothing left to press: the plan ran or was denied (here or elsewhere); `final` false while it
   * still runs elsewhere, so that its report is picked up when it ends. */
  const finish = (final = true) => {
    done = true;
    settled = final;
    stopCountdown();
    for (const b of [approveButton, runButton, denyButton]) b.disabled = true;
    approveButton.hidden = runButton.hidden = true;
    reason.disabled = true;
    gate.disable();
    if (final) {
      watch.stop();
      decision.hidden = true;  // nothing left to decide: no greyed-out buttons or typed name left behind
    }
  };

  async function run() {
    runButton.disabled = true;
    approveButton.disabled = true;
    denyButton.disabled = true;
    stopCountdown();
    here = true;
    try {
      await executePlan(card, plan, approvalId);
      finish();
      status.textContent = '';
      card.querySelector('[data-testid=run-outcome]')?.focus();
    } catch (err) {
      here = false;
      if (err.status === 409) { watch.check(); return; }  // it ran elsewhere meanwhile
      // Expired or used: a new approval is needed; anything else leaves the buttons as they were.
      approvalId = null;
      runButton.hidden = true;
      approveButton.hidden = false;
      gate.enable();
      setReady();
      denyButton.disabled = false;
      status.textContent = err.status === 403 ? `${err.message}. Approve again to run.` : '';
      status.classList.add('error');
      status.focus();
    }
  }

  async function approve() {
    if (done || !gate.ready()) return;
    if (!mutating) { await run(); return; }
    approveButton.disabled = true;
    status.classList.remove('error');
    try {
      const approval = await api('/v1/approve', {method: 'POST', body: {request_id: plan.request_id, ...gate.body()}});
      approvalId = approval.approval_id;
      approveButton.hidden = true;
      runButton.hidden = false;
      runButton.disabled = false;
      gate.disable();
      stopCountdown = countdown(approval.expires_at, status, () => {});
      status.focus();  // announced; Run now is the next Tab stop, never pressed for the operator
    } catch (err) {
      setReady();
      replace(card.querySelector('.run-result'), errorBox(err, 'Not approved'));
      if (err.status === 409) watch.check();
    }
  }

  async function deny() {
    if (done) return;
    denyButton.disabled = true;
    try {
      await api('/v1/deny', {method: 'POST', body: {request_id: plan.request_id, reason: reason.value.trim() || null}});
      finish();
      markFinished(card, 'denied');
      replace(card.querySelector('.run-result'), h('div', {class: 'done denied', role: 'status', tabindex: '-1', 'data-testid': 'denied'},
        h('strong', {}, 'Denied. '), 'Nothing ran; the denial is in the audit trail.'));
      status.textContent = '';
      card.querySelector('[data-testid=denied]').focus();
    } catch (err) {
      denyButton.disabled = false;
      replace(card.querySelector('.run-result'), errorBox(err, 'Deny failed'));
      if (err.status === 409) watch.check();
    }
  }

  /** Another window ran or denied it: show what happened there. */
  function changedElsewhere(fresh) {
    if (here || settled || !finished(fresh.status)) return;
    finish(fresh.status !== 'running');
    if (fresh.status === 'done' && fresh.report) showReport(card, plan, fresh.report);
    markFinished(card, fresh.status, true);
    status.textContent = '';
  }

  approveButton.addEventListener('click', approve);
  runButton.addEventListener('click', run);
  denyButton.addEventListener('click', deny);
  const onKey = event => {
    // Esc goes back; no other key acts here (approving is a click, or Space/Enter on a focused button).
    if (event.key !== 'Escape' || event.ctrlKey || event.altKey || event.metaKey) return;
    if (event.target instanceof HTMLInputElement) { event.target.blur(); return; }
    if (history.length > 1) history.back(); else location.hash = '#ask';
  };
  document.addEventListener('keydown', onKey);
  // Shown again by the desktop shell (the window is reused): re-read the plan's status, start at the top.
  const onShown = () => {
    watch.check();
    if (!done) { window.scrollTo(0, 0); heading.focus({preventScroll: true}); }
  };
  window.addEventListener('cloudops:shown', onShown);

  const watch = watchPlan(plan.request_id, shown.status, changedElsewhere);
  if (finished(shown.status)) changedElsewhere(shown);

  // Open at the top: the banner, the risk and the commands are what the operator reads first.
  window.scrollTo(0, 0);
  view.scrollTop = 0;
  heading.focus({preventScroll: true});

  if (canRun(plan) && mutating && !done) {
    api('/v1/dryrun', {method: 'POST', body: {request_id: plan.request_id}})
      .then(data => showDryRun(card, data.results))
      .catch(() => {});
  }
  return () => {
    stopCountdown();
    watch.stop();
    document.removeEventListener('keydown', onKey);
    window.removeEventListener('cloudops:shown', onShown);
  };
}
