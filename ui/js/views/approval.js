// The approval view (#plan/<request_id>): the whole plan, the dry run where AWS offers one, then
// Approve (an approval pinned to this plan, expiring) and Run, or Deny. An expired or used approval
// is refused by the endpoint and said plainly here.

import {api} from '../api.js';
import {errorBox, h, replace} from '../dom.js';
import {canRun, executePlan, fetchPlanView, isMutating, renderPlan, showDryRun} from '../plan.js';

function countdown(expiresAt, el, onExpired) {
  const tick = () => {
    const left = Math.round((new Date(expiresAt).getTime() - Date.now()) / 1000);
    if (left <= 0) {
      el.textContent = 'This approval has expired: approve again to run.';
      el.classList.add('error');
      onExpired();
      return false;
    }
    el.textContent = `Approved. Expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')} (at ${new Date(expiresAt).toLocaleTimeString()}).`;
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
      errorBox(err.status === 404 ? {message: 'This plan is not in this session: it was denied, or made by an earlier launch of the app. Ask again from Quick ask.'} : err),
      h('p', {}, h('a', {href: '#ask'}, 'Back to Quick ask'))));
    view.querySelector('a').focus();
    return null;
  }
  const plan = shown.plan;
  const card = renderPlan(plan, shown.production);
  const status = h('p', {class: 'approval-status', role: 'status', 'aria-live': 'polite'});
  const approveButton = h('button', {type: 'button', class: 'primary', id: 'approve', 'aria-keyshortcuts': 'A'},
    isMutating(plan) ? (shown.production.length ? 'Approve (production)' : 'Approve') : 'Run (read-only)');
  const runButton = h('button', {type: 'button', class: 'primary', id: 'run', hidden: true}, 'Run now');
  const reason = h('input', {id: 'deny-reason', type: 'text', maxlength: '500', placeholder: 'optional',
    autocomplete: 'off'});
  const denyButton = h('button', {type: 'button', class: 'danger', id: 'deny', 'aria-keyshortcuts': 'D'}, 'Deny');
  const ttl = Math.round(shown.approval_ttl_s / 60);
  const actions = h('div', {class: 'approval-actions'},
    h('div', {class: 'actions'}, approveButton, runButton, denyButton),
    h('div', {class: 'field inline'}, h('label', {for: 'deny-reason'}, 'Reason to deny'), reason),
    h('p', {class: 'hint'}, `An approval is for this exact plan, used once, and expires after ${ttl >= 1 ? `${ttl} min` : `${shown.approval_ttl_s} s`}. `,
      h('kbd', {}, 'Esc'), ' goes back.'),
    status);
  replace(view, h('section', {class: 'approval'}, h('h1', {}, 'Approve plan'), card, canRun(plan) ? actions : null,
    canRun(plan) ? null : h('p', {}, h('a', {href: '#ask'}, 'Back to Quick ask'))));

  let approvalId = null;
  let stopCountdown = () => {};
  let finished = false;

  const finish = () => {
    finished = true;
    stopCountdown();
    for (const b of [approveButton, runButton, denyButton]) b.disabled = true;
    reason.disabled = true;
  };

  async function run() {
    runButton.disabled = true;
    approveButton.disabled = true;
    denyButton.disabled = true;
    stopCountdown();
    try {
      await executePlan(card, plan, approvalId);
      finish();
      status.textContent = '';
      card.querySelector('.run-result').focus?.();
    } catch (err) {
      // Expired or used: a new approval is needed; anything else leaves the buttons as they were.
      approvalId = null;
      runButton.hidden = true;
      approveButton.hidden = false;
      approveButton.disabled = false;
      denyButton.disabled = false;
      status.textContent = err.status === 403 ? `${err.message}. Approve again to run.` : '';
      status.classList.add('error');
      approveButton.focus();
    }
  }

  async function approve() {
    if (finished) return;
    if (!isMutating(plan)) { await run(); return; }
    approveButton.disabled = true;
    status.classList.remove('error');
    try {
      const approval = await api('/v1/approve', {method: 'POST', body: {request_id: plan.request_id}});
      approvalId = approval.approval_id;
      approveButton.hidden = true;
      runButton.hidden = false;
      runButton.disabled = false;
      stopCountdown = countdown(approval.expires_at, status, () => {});
      runButton.focus();
    } catch (err) {
      approveButton.disabled = false;
      replace(card.querySelector('.run-result'), errorBox(err, 'Not approved'));
    }
  }

  async function deny() {
    if (finished) return;
    denyButton.disabled = true;
    try {
      await api('/v1/deny', {method: 'POST', body: {request_id: plan.request_id, reason: reason.value.trim() || null}});
      finish();
      replace(card.querySelector('.run-result'), h('div', {class: 'done denied', role: 'status', 'data-testid': 'denied'},
        h('strong', {}, 'Denied. '), 'Nothing ran; the denial is in the audit trail.'));
      status.textContent = '';
    } catch (err) {
      denyButton.disabled = false;
      replace(card.querySelector('.run-result'), errorBox(err, 'Deny failed'));
    }
  }

  approveButton.addEventListener('click', approve);
  runButton.addEventListener('click', run);
  denyButton.addEventListener('click', deny);
  const onKey = event => {
    if (event.target instanceof HTMLInputElement || event.ctrlKey || event.altKey || event.metaKey) {
      if (event.key === 'Escape' && event.target === reason) reason.blur();
      return;
    }
    if (event.key === 'Escape') { history.length > 1 ? history.back() : (location.hash = '#ask'); }
    else if ((event.key === 'a' || event.key === 'A') && !approveButton.hidden && !approveButton.disabled) { event.preventDefault(); approve(); }
    else if ((event.key === 'd' || event.key === 'D') && !denyButton.disabled) { event.preventDefault(); deny(); }
  };
  document.addEventListener('keydown', onKey);
  if (canRun(plan)) approveButton.focus();

  if (canRun(plan) && isMutating(plan)) {
    api('/v1/dryrun', {method: 'POST', body: {request_id: plan.request_id}})
      .then(data => showDryRun(card, data.results))
      .catch(() => {});
  }
  return () => { stopCountdown(); document.removeEventListener('keydown', onKey); };
}
