// How a plan reads, in Quick ask and in the approval view alike: the explain plan, each step's AWS CLI
// line (copyable), a risk badge coloured by level, a loud banner when any target is in production,
// the risk reasons, impact and rollback, dry-run results, and after a run each step's outcome.

import {api} from './api.js';
import {copyText, errorBox, h, replace, toast} from './dom.js';

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

/** The plan as a card. `production` lists the targets that are production (from /v1/plans/<id>). */
export function renderPlan(plan, production = [], {onChoose} = {}) {
  const risk = plan.risk_assessment;
  const c = plan.classification;
  const card = h('article', {class: 'plan', 'data-request-id': plan.request_id, 'aria-label': 'Plan'});
  if (production.length) {
    card.append(h('div', {class: 'banner production', role: 'alert', 'data-testid': 'production-banner'},
      h('strong', {}, 'PRODUCTION'), ` — this plan acts on production: ${production.join(', ')}`));
  }
  if (risk.denied) {
    card.append(h('div', {class: 'banner denied', role: 'alert'},
      h('strong', {}, 'DENIED BY POLICY'), ` — ${risk.denied_reasons.join('; ')}`));
  }
  card.append(h('header', {class: 'plan-head'},
    plan.clarification ? h('span', {class: 'badge risk-unknown'}, 'QUESTION') : riskBadge(risk.level),
    h('span', {class: 'playbook'}, c.playbook || 'no playbook'),
    h('span', {class: 'muted'}, `confidence ${(c.confidence * 100).toFixed(0)}% · planned by ${plan.served_by}`)));
  if (plan.clarification) {
    card.append(clarificationBlock(plan, onChoose));
  } else {
    card.append(h('p', {class: 'explain'}, plan.explain_plan));
    if (plan.script.steps.length) card.append(h('ol', {class: 'steps'}, plan.script.steps.map(stepItem)));
    const details = [];
    if (risk.reasons.length) details.push(h('h3', {}, 'Why this risk'), h('ul', {class: 'reasons'}, risk.reasons.map(r => h('li', {}, r))));
    if (risk.impact) details.push(h('h3', {}, 'Impact'), h('p', {}, risk.impact));
    if (risk.rollback) details.push(h('h3', {}, 'Rollback'), h('p', {}, risk.rollback));
    if (details.length) card.append(h('section', {class: 'risk-details'}, details));
    card.append(h('p', {class: 'approval-note'}, risk.denied ? 'This plan cannot run.'
      : !plan.script.steps.length ? 'Nothing to run (see the warnings).'
        : plan.approval_required ? 'Needs your approval before anything runs.' : 'Read-only: runs without approval.'));
  }
  if (plan.warnings.length) card.append(h('ul', {class: 'warnings'}, plan.warnings.map(w => h('li', {}, w))));
  card.append(h('div', {class: 'run-result', 'aria-live': 'polite'}));
  return card;
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
    for (const s of report.steps) {
      const bits = [];
      if (s.aws_request_id) bits.push(`AWS request ${s.aws_request_id}`);
      if (s.waited_for) bits.push(`waited for ${s.waited_for}`);
      if (s.error) bits.push(s.error);
      setStepStatus(card, s.step_id, s.status, bits.join(' · '));
    }
    replace(result, h('div', {class: report.ok ? 'done ok' : 'done failed', role: 'status', 'data-testid': 'run-outcome',
      'data-ok': String(report.ok)}, h('strong', {}, report.ok ? 'Done. ' : 'Stopped. '), report.state_left));
    return report;
  } catch (err) {
    stopFollowing();
    for (const step of plan.script.steps) setStepStatus(card, step.step_id, 'not_run', '');
    replace(result, errorBox(err, err.status === 403 ? 'Not run' : 'Run failed'));
    throw err;
  }
}
