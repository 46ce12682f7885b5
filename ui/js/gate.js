// What approving a plan takes, scaled to its risk, in Quick ask and the approval view alike:
//
// * read-only: a "Run (read-only)" button;
// * a change: a button that names it ("Stop pg-instance-main1 in production"), never a bare key;
// * a critical plan, or a change to production (the client set `confirmation.phrase`): the name typed,
//   shown with the exact commands; the button stays disabled until it matches, and the name is sent as
//   `confirm` (the service refuses the approval without it);
// * data that may be out of date (`confirmation.stale`): a checkbox saying so, sent as `stale_ok`.
//
// No keyboard shortcut approves or runs a plan that needs the name typed or the acknowledgement
// (see quickRunAllowed): the operator has to type and click.

import {h} from './dom.js';

const VERB_WORDS = /[A-Z][a-z]+|[A-Z]+(?![a-z])/g;

/** 'TerminateInstances' -> 'Terminate'; 'StopDBInstance' -> 'Stop'. */
function verbOf(operation) {
  return (operation.match(VERB_WORDS) || [operation])[0];
}

export function changingSteps(plan) {
  return plan.script.steps.filter(s => s.mutating);
}

function sameAccount(resource, step) {
  if (resource.account_id && step.account_id) return resource.account_id === step.account_id;
  return !(resource.account_name && step.account_name) || resource.account_name === step.account_name;
}

/** The identified resources `steps` act on: named by id or ARN *in the step's own account* (the same
 * name, e.g. orders-db, lives in several accounts, and the lookup sends all of them). */
export function actedOn(plan, steps = plan.script.steps) {
  return plan.identified_resources.filter(r => steps.some(s =>
    (s.targets.includes(r.resource_id) || (r.arn && s.targets.includes(r.arn))) && sameAccount(r, s)));
}

/** The names of what the plan's changing steps act on (identified names where the client has them). */
export function targetNames(plan) {
  const steps = changingSteps(plan).length ? changingSteps(plan) : plan.script.steps;
  const names = [];
  for (const s of steps) {
    for (const t of s.targets) {
      const known = actedOn(plan, [{...s, targets: [t]}])[0];
      names.push(known ? known.name || known.resource_id : t);
    }
  }
  return [...new Set(names)];
}

function listed(names, most = 3) {
  if (names.length <= most) return names.join(', ');
  return `${names.slice(0, most).join(', ')} and ${names.length - most} more`;
}

/** The action in words: 'Stop pg-instance-main1 in production', 'Reboot jenkins-controller in staging'. */
export function actionLabel(plan, production = []) {
  const steps = changingSteps(plan);
  if (!steps.length) return 'Run (read-only)';
  const verbs = [...new Set(steps.map(s => verbOf(s.operation)))];
  const accounts = [...new Set(steps.map(s => s.account_name || s.account_id).filter(Boolean))];
  const where = production.length ? 'production' : listed(accounts, 2);
  const names = targetNames(plan);
  return `${verbs.join(' and ')} ${listed(names) || steps[0].operation}${where ? ` in ${where}` : ''}`;
}

/** Whether Ctrl+Enter may approve and run this plan: only a low-risk one that needs no typed name
 * (production, critical) and no out-of-date acknowledgement. Medium and high risk take the button. */
export function quickRunAllowed(plan) {
  const c = plan.confirmation || {};
  return !c.phrase && !c.stale && plan.risk_assessment.level === 'low';
}

/**
 * The confirmation controls for `plan` (empty when it needs none). `id` prefixes element ids so two
 * views never clash. Returns {element, ready(), body(), onChange(fn), disable(), enable()}: `ready()` is true
 * when the typed name matches and the acknowledgement (if asked) is ticked; `body()` is what the
 * approve call sends besides the request id.
 */
export function confirmationGate(plan, id) {
  const c = plan.confirmation || {};
  const listeners = [];
  const changed = () => listeners.forEach(fn => fn());
  const parts = [];
  let typed = null;
  let ack = null;
  if (c.phrase && changingSteps(plan).length) {
    typed = h('input', {id: `${id}-confirm`, type: 'text', autocomplete: 'off', spellcheck: 'false',
      'aria-describedby': `${id}-confirm-why`, 'data-testid': 'confirm-input', maxlength: '512'});
    typed.addEventListener('input', () => {
      typed.classList.toggle('matches', typed.value.trim() === c.phrase);
      changed();
    });
    // Enter in this box does nothing: approving is a click (or Space on the button the operator moved to).
    typed.addEventListener('keydown', event => { if (event.key === 'Enter') event.preventDefault(); });
    const why = (c.reasons || []).join('; ');
    parts.push(h('div', {class: 'confirm-box', role: 'group', 'aria-labelledby': `${id}-confirm-label`},
      h('p', {id: `${id}-confirm-why`, class: 'confirm-why'},
        h('strong', {}, `${why ? why[0].toUpperCase() + why.slice(1) : 'This needs the name typed'}.`), ' It runs exactly:'),
      h('ul', {class: 'confirm-commands'}, changingSteps(plan).map(s => h('li', {}, h('code', {}, s.command)))),
      h('label', {for: `${id}-confirm`, id: `${id}-confirm-label`}, 'To approve, type ', h('strong', {class: 'phrase'}, c.phrase)),
      typed));
  }
  if (c.stale) {
    ack = h('input', {id: `${id}-stale`, type: 'checkbox', 'data-testid': 'stale-ack'});
    ack.addEventListener('change', changed);
    parts.push(h('div', {class: 'stale-box', role: 'group'},
      h('p', {class: 'stale-why'}, h('strong', {}, 'The data may be out of date. '), c.stale),
      h('div', {class: 'field check'}, ack,
        h('label', {for: `${id}-stale`}, 'I know this plan may act on out-of-date data; approve it anyway'))));
  }
  return {
    element: parts.length ? h('div', {class: 'approve-gate'}, parts) : null,
    ready: () => (!typed || typed.value.trim() === c.phrase) && (!ack || ack.checked),
    typedOk: () => !typed || typed.value.trim() === c.phrase,
    body: () => ({...(typed ? {confirm: typed.value.trim()} : {}), ...(ack ? {stale_ok: ack.checked} : {})}),
    onChange: fn => listeners.push(fn),
    disable: () => { if (typed) typed.disabled = true; if (ack) ack.disabled = true; },
    enable: () => { if (typed) typed.disabled = false; if (ack) ack.disabled = false; },
  };
}
