// How a plan reads, in Quick ask and in the approval view alike: the explain plan, each step's AWS CLI
// line (copyable), a risk badge coloured by level, a loud banner when any target is in production, a
// warning when the data it was planned on may be out of date, what it acts on and how old that
// knowledge is, the risk reasons, impact and rollback, dry-run results, and after a run each step's
// outcome with the response of every read.

import {api} from './api.js';
import {ageLabel, copyText, errorBox, h, replace, toast} from './dom.js';
import {actedOn} from './gate.js';
import {renderCombined, renderOutput} from './output.js';

export const RISK_LEVELS = ['low', 'medium', 'high', 'critical'];

export function riskBadge(level) {
  const safe = RISK_LEVELS.includes(level) ? level : 'unknown';
  return h('span', {class: `badge risk-${safe}`, 'data-risk': safe}, `${safe.toUpperCase()} RISK`);
}

/** The plan and its production targets: POST /v1/plan answers the protocol's PlanResponse only. */
export async function fetchPlanView(requestId) {
  return api(`/v1/plans/${encodeURIComponent(requestId)}`);
}

export function isMutating(plan) {
  return plan.script.steps.some(s => s.mutating);
}

export function canRun(plan) {
  return !plan.clarification && plan.script.steps.length > 0 && !plan.risk_assessment.denied;
}

/** The plan's state in the service: 'planned', 'approved', 'running', 'done' or 'denied'. */
export function finished(status) {
  return status === 'done' || status === 'running' || status === 'denied';
}

const STALE_WARNING = /^the data may be out of date/i;

function copyButton(step) {
  return h('button', {type: 'button', class: 'small', 'aria-label': `Copy the command of step ${step.step_id}`,
    onclick: async () => toast(await copyText(step.command) ? 'Command copied' : 'Copy failed: select the text')},
  'Copy');
}

function stepItem(step) {
  const where = [step.account_name || step.account_id, step.region, step.profile ? `profile ${step.profile}` : null]
    .filter(Boolean).join(' · ');
  return h('li', {class: 'step', 'data-step': step.step_id},
    h('div', {class: 'step-head'},
      h('span', {class: 'step-id'}, step.step_id),
      h('strong', {}, `${step.service}:${step.operation}`),
      h('span', {class: step.mutating ? 'tag mutating' : 'tag'}, step.mutating ? 'changes resources' : 'read-only'),
      h('span', {class: 'muted'}, where),
      h('span', {class: 'step-status', 'data-status': 'planned'})),
    step.description ? h('p', {class: 'step-desc'}, step.description) : null,
    h('div', {class: 'command'},
      h('pre', {tabindex: '0', 'aria-label': `AWS CLI command of step ${step.step_id}`}, h('code', {}, step.command)),
      copyButton(step)),
    step.denied_by && step.denied_by.length
      ? h('p', {class: 'error'}, `Denied by policy: ${step.denied_by.join('; ')}`) : null,
    h('p', {class: 'dry-run muted', hidden: true}),
    h('p', {class: 'outcome', hidden: true}));
}

function clarificationBlock(plan, onChoose) {
  const c = plan.clarification;
  return h('div', {class: 'clarify', role: 'group', 'aria-label': 'Which one?'},
    h('p', {class: 'question'}, c.question),
    h('ul', {class: 'choices'}, c.candidates.map(cand => h('li', {},
      onChoose ? h('button', {type: 'button', onclick: () => onChoose(cand)}, cand.label) : cand.label))));
}

/** What the steps act on, each with where it is, the state the index last saw and how old that is. */
function targetsBlock(plan) {
  const acted = actedOn(plan);
  if (!acted.length) return null;
  return h('ul', {class: 'targets', 'aria-label': 'Acts on'}, acted.map(r => h('li', {'data-testid': 'target'},
    h('strong', {}, r.name || r.resource_id), ' ',
    h('span', {class: 'muted'}, [r.resource_type, [r.account_name || r.account_id, r.region].filter(Boolean).join(' ')]
      .filter(Boolean).join(' · ')),
    r.current_state ? h('span', {class: 'state'}, ` · ${r.current_state}`) : null,
    ' · ', ageLabel(r.synced_at))));
}

/** The plan as a card. `production` lists the targets that are production (from /v1/plans/<id>). */
export function renderPlan(plan, production = [], {onChoose} = {}) {
  const risk = plan.risk_assessment;
  const c = plan.classification;
  const stale = plan.confirmation && plan.confirmation.stale;
  const card = h('article', {class: 'plan', 'data-request-id': plan.request_id, 'aria-label': 'Plan'});
  if (production.length && isMutating(plan)) {
    card.append(h('div', {class: 'banner production', role: 'alert', 'data-testid': 'production-banner'},
      h('strong', {}, 'PRODUCTION'), ` — this plan changes production: ${production.join(', ')}`));
  } else if (production.length) {  // a read: said, but not as an alarm next to its LOW RISK badge
    card.append(h('div', {class: 'banner production-read', 'data-testid': 'production-banner'},
      h('strong', {}, 'PRODUCTION, READ-ONLY'), ` — reads ${production.join(', ')}; nothing changes`));
  }
  if (risk.denied) {
    card.append(h('div', {class: 'banner denied', role: 'alert'},
      h('strong', {}, 'DENIED BY POLICY'), ` — ${risk.denied_reasons.join('; ')}`));
  }
  if (stale) {
    card.append(h('div', {class: 'banner stale', role: 'alert', 'data-testid': 'stale-banner'},
      h('strong', {}, 'DATA MAY BE OUT OF DATE'), ` — ${stale}. Sync first, or acknowledge it to approve.`));
  }
  card.append(h('header', {class: 'plan-head'},
    plan.clarification ? h('span', {class: 'badge risk-unknown'}, 'QUESTION') : riskBadge(risk.level),
    h('span', {class: 'playbook'}, c.playbook || 'no playbook'),
    h('span', {class: 'muted'}, `confidence ${(c.confidence * 100).toFixed(0)}% · planned by ${plan.served_by}`),
    plan.data_as_of ? h('span', {class: 'muted data-age', 'data-testid': 'plan-age'}, 'data ', ageLabel(plan.data_as_of)) : null));
  if (plan.answer) {
    card.append(h('div', {class: 'answer', role: 'status', 'data-testid': 'answer'}, h('p', {}, plan.answer.text),
      // The answer usually says its data age itself ('(synced 1 min ago)'); else it is added here.
      plan.answer.as_of && !/\bsynced\b/.test(plan.answer.text) ? h('p', {class: 'hint'}, 'From the index, ', ageLabel(plan.answer.as_of)) : null));
  }
  if (plan.clarification) {
    card.append(clarificationBlock(plan, onChoose));
  } else {
    // The first line says what happens; the rest (how it was planned and checked) is a click away, so the
    // commands are near the top of a small window.
    const [summary, ...more] = plan.explain_plan.split('\n');
    card.append(h('p', {class: 'explain'}, summary));
    if (more.join('').trim()) {
      card.append(h('details', {class: 'explain-more'}, h('summary', {}, 'How this plan was made and checked'),
        h('p', {class: 'explain'}, more.join('\n').trim())));
    }
    const acts = targetsBlock(plan);
    if (acts) card.append(h('h3', {}, 'Acts on'), acts);
    if (plan.script.steps.length) card.append(h('ol', {class: 'steps'}, plan.script.steps.map(stepItem)));
    const details = [];
    if (risk.reasons.length) details.push(h('h3', {}, 'Why this risk'), h('ul', {class: 'reasons'}, risk.reasons.map(r => h('li', {}, r))));
    if (risk.impact) details.push(h('h3', {}, 'Impact'), h('p', {}, risk.impact));
    if (risk.rollback) details.push(h('h3', {}, 'Rollback'), h('p', {}, risk.rollback));
    if (details.length) card.append(h('section', {class: 'risk-details'}, details));
    card.append(h('p', {class: 'approval-note', 'data-testid': 'approval-note'}, risk.denied ? 'This plan cannot run.'
      : !plan.script.steps.length ? 'Nothing to run (see the warnings).'
        : plan.approval_required ? 'Needs your approval before anything runs.' : 'Read-only: runs without approval.'));
  }
  const warnings = plan.warnings.filter(w => !(stale && STALE_WARNING.test(w)));
  if (warnings.length) card.append(h('ul', {class: 'warnings'}, warnings.map(w => h('li', {}, w))));
  card.append(h('div', {class: 'run-result', 'aria-live': 'polite'}));
  return card;
}

/** After a run or a denial, wherever it happened: the note says so instead of asking for approval. */
export function markFinished(card, status, elsewhere = false) {
  const note = card.querySelector('.approval-note');
  if (!note) return;
  note.textContent = status === 'denied' ? `Denied${elsewhere ? ' in another window' : ''}: nothing ran. Plan again to run it.`
    : status === 'running' ? `Running${elsewhere ? ' (started in another window)' : ''}…`
      : `This plan ran${elsewhere ? ' (from another window)' : ''}. A plan runs once: plan again to run it again.`;
  note.classList.add('finished');
}

export function showDryRun(card, results) {
  for (const [stepId, text] of Object.entries(results || {})) {
    const line = card.querySelector(`li.step[data-step="${CSS.escape(stepId)}"] .dry-run`);
    if (!line) continue;
    line.hidden = false;
    line.textContent = `Dry run: ${text}`;
    line.classList.toggle('good', text === 'would succeed');
  }
}

function setStepStatus(card, stepId, status, text) {
  const li = card.querySelector(`li.step[data-step="${CSS.escape(stepId)}"]`);
  if (!li) return;
  const badge = li.querySelector('.step-status');
  badge.dataset.status = status;
  badge.textContent = status.replace('_', ' ');
  const outcome = li.querySelector('.outcome');
  outcome.hidden = !text;
  outcome.textContent = text || '';
}

const PROGRESS_POLL_MS = 700;

/** While /v1/execute runs (one call for the whole plan), follow its steps in the audit trail: the
 * executor records each step as it ends, in plan order, so the n-th step event is the n-th step. */
function followProgress(card, plan) {
  let stopped = false;
  const poll = async () => {
    if (stopped) return;
    try {
      const events = await api(`/v1/audit?limit=${Math.min(1000, 20 + plan.script.steps.length * 2)}`);
      const done = events.filter(e => e.kind === 'step' && e.request_id === plan.request_id).reverse();
      done.forEach((e, i) => {
        const step = plan.script.steps[i];
        if (step && !stopped) setStepStatus(card, step.step_id, e.outcome, e.detail || '');
      });
      const next = plan.script.steps[done.length];
      if (next && !stopped) setStepStatus(card, next.step_id, 'running', 'Running…');
    } catch { /* progress is a courtesy: the final report still comes */ }
    if (!stopped) setTimeout(poll, PROGRESS_POLL_MS);
  };
  setTimeout(poll, PROGRESS_POLL_MS);
  return () => { stopped = true; };
}

/** A finished run on the card: each step's outcome, the response of each call (reads open, changes
 * folded), and what state the run left. Used after a run here and for a plan that ran elsewhere. */
export function showReport(card, plan, report) {
  const reads = report.steps.filter(s => s.status === 'succeeded' && !s.mutating && s.output !== null && s.output !== undefined);
  const perOperation = new Map();
  for (const s of reads) perOperation.set(s.operation, (perOperation.get(s.operation) || 0) + 1);
  const listed = new Set([...perOperation].filter(([, n]) => n > 1).map(([operation]) => operation));
  for (const s of report.steps) {
    const bits = [];
    if (s.aws_request_id) bits.push(`AWS request ${s.aws_request_id}`);
    if (s.waited_for) bits.push(`waited for ${s.waited_for}`);
    if (s.error) bits.push(s.error);
    setStepStatus(card, s.step_id, s.status, bits.join(' · '));
    const li = card.querySelector(`li.step[data-step="${CSS.escape(s.step_id)}"]`);
    li?.querySelector('.read-result')?.remove();
    if (li && s.status === 'succeeded' && s.output !== null && s.output !== undefined) {
      li.append(renderOutput(s, {open: !s.mutating && !listed.has(s.operation)}));
    }
  }
  const combined = [...listed].map(operation => renderCombined(reads.filter(s => s.operation === operation)));
  const outcome = h('div', {class: report.ok ? 'done ok' : 'done failed', role: 'status', tabindex: '-1',
    'data-testid': 'run-outcome', 'data-ok': String(report.ok)},
  h('strong', {}, report.ok ? 'Done. ' : 'Stopped. '), report.state_left,
  report.index_note ? h('p', {class: 'hint'}, report.index_note) : null);
  replace(card.querySelector('.run-result'), outcome);
  // A listing's table goes above the steps, right under what the plan acts on: what was asked for.
  card.querySelector('.combined-results')?.remove();
  if (combined.length) card.querySelector('ol.steps')?.before(h('div', {class: 'combined-results'}, combined));
  markFinished(card, 'done');
  return outcome;
}

/** Run the plan (with `approvalId` when it changes anything) and show each step's progress and outcome. */
export async function executePlan(card, plan, approvalId) {
  const result = card.querySelector('.run-result');
  for (const step of plan.script.steps) setStepStatus(card, step.step_id, 'queued', '');
  if (plan.script.steps.length) setStepStatus(card, plan.script.steps[0].step_id, 'running', 'Running…');
  replace(result, h('p', {class: 'muted'}, 'Running on AWS…'));
  const stopFollowing = followProgress(card, plan);
  try {
    const report = await api('/v1/execute', {method: 'POST', body: {request_id: plan.request_id, approval_id: approvalId}});
    stopFollowing();
    showReport(card, plan, report);
    return report;
  } catch (err) {
    stopFollowing();
    for (const step of plan.script.steps) setStepStatus(card, step.step_id, 'not_run', '');
    replace(result, errorBox(err, err.status === 403 ? 'Not run' : 'Run failed'));
    throw err;
  }
}

const WATCH_MS = 4000;

/** Keep a view of a plan honest when another window acts on it: re-read GET /v1/plans/<id> when the
 * window gets focus or becomes visible, and every few seconds while it is visible, and call
 * `onChange(view)` when its status moves on. A plan runs once: once it is done or denied, watching
 * stops. Returns {check(), stop()}. */
export function watchPlan(requestId, initialStatus, onChange) {
  let status = initialStatus;
  let stopped = false;
  let inFlight = false;
  const check = async () => {
    if (stopped || inFlight) return;
    inFlight = true;
    try {
      const view = await fetchPlanView(requestId);
      if (!stopped && view.status !== status) {
        status = view.status;
        onChange(view);
      }
      if (view.status === 'done' || view.status === 'denied') stop();
    } catch (err) {
      if (err.status === 404) stop();  // forgotten (an old plan of this session): nothing more to learn
    } finally {
      inFlight = false;
    }
  };
  const onVisible = () => { if (document.visibilityState === 'visible') check(); };
  const timer = setInterval(() => { if (document.visibilityState === 'visible') check(); }, WATCH_MS);
  window.addEventListener('focus', check);
  document.addEventListener('visibilitychange', onVisible);
  function stop() {
    stopped = true;
    clearInterval(timer);
    window.removeEventListener('focus', check);
    document.removeEventListener('visibilitychange', onVisible);
  }
  return {check, stop, known: s => { status = s; }};
}
