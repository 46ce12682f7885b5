// Quick ask: one prompt box with resource-name suggestions from the local index as you type; Enter
// plans and shows the plan right under it, then what approving it takes (gate.js): a button that
// names the action, and for critical or production plans the name typed first. Ctrl+Enter runs only
// plans that need neither the typed name nor an out-of-date acknowledgement.

import {api, inDesktop, qs} from '../api.js';
import {errorBox, h, replace} from '../dom.js';
import {actionLabel, confirmationGate, quickRunAllowed} from '../gate.js';
import {canRun, executePlan, fetchPlanView, finished, isMutating, markFinished, renderPlan, showReport, watchPlan}
  from '../plan.js';
import {failureSentences} from '../syncstatus.js';

const MIN_CHARS = 2;

/** The word being typed at the caret: what suggestions complete. */
function currentWord(input) {
  const upto = input.value.slice(0, input.selectionStart ?? input.value.length);
  const match = upto.match(/[^\s"']+$/);
  return match ? {text: match[0], start: upto.length - match[0].length, end: upto.length} : null;
}

export async function render(view) {
  let suggestions = [];
  let active = -1;
  let pending = null;
  let current = null;  // {plan, production, card, gate, watch, ran, prompt}
  let busy = false;
  let generation = 0;  // bumped when a plan is asked for: suggestions asked before it are dropped

  const input = h('input', {id: 'prompt', type: 'text', role: 'combobox', 'aria-autocomplete': 'list',
    'aria-expanded': 'false', 'aria-controls': 'suggestions', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'Stop pg-instance-main1', 'aria-describedby': 'ask-hint', maxlength: '4000'});
  const list = h('ul', {id: 'suggestions', role: 'listbox', class: 'suggestions', hidden: true, 'aria-label': 'Resource names'});
  const planButton = h('button', {type: 'submit', class: 'primary'}, 'Plan');
  const runButton = h('button', {type: 'button', id: 'approve-run', class: 'primary', disabled: true,
    onclick: () => approveAndRun()}, 'Run');
  const openButton = h('button', {type: 'button', id: 'open-approval', disabled: true,
    onclick: () => openApproval()}, 'Open approval view');
  const area = h('div', {id: 'plan-area', 'aria-live': 'polite'});
  const gateArea = h('div', {id: 'ask-gate'});
  const keyNote = h('p', {class: 'hint key-note', id: 'key-note', role: 'status', hidden: true});
  // Says what enables the button and takes the operator there: the approval box may be below the fold of
  // the plan card, and "the box above" read as the prompt box (found by trying the window at its size).
  const readyHint = h('button', {type: 'button', class: 'link ready-hint', id: 'ready-hint', hidden: true});
  readyHint.addEventListener('click', () => {
    const target = view.querySelector('[data-testid="confirm-input"]') || view.querySelector('[data-testid="stale-ack"]');
    if (!target) return;
    target.scrollIntoView({block: 'center'});
    target.focus();
  });
  // The buttons are a direct child of the page section so that they can stay in sight at the bottom of
  // the small Quick ask window while the plan above them is read (CSS position: sticky).
  const actions = h('div', {class: 'actions ask-actions', hidden: true}, runButton, openButton, readyHint);
  const syncAlert = h('div', {class: 'sync-alert', hidden: true, role: 'alert', 'data-testid': 'sync-alert'});
  const staleNote = h('p', {class: 'hint stale-note', id: 'stale-note', hidden: true},
    'The prompt changed since this plan: press Enter to plan it again before running.');
  const form = h('form', {class: 'ask-form', role: 'search', 'aria-label': 'Ask', onsubmit: e => { e.preventDefault(); plan(); }},
    h('label', {for: 'prompt', class: 'big-label'}, 'What should happen?'),
    h('div', {class: 'ask-row'}, h('div', {class: 'combo'}, input, list), planButton));

  replace(view, h('section', {class: 'ask'},
    h('h1', {class: 'sr-only'}, 'Quick ask'),
    syncAlert,
    form,
    h('p', {id: 'ask-hint', class: 'hint'},
      h('kbd', {}, 'Enter'), ' plans · ', h('kbd', {}, 'Ctrl'), '+', h('kbd', {}, 'Enter'),
      ' runs a low-risk plan (never a change to production, never a critical one) · ',
      h('kbd', {}, '↓'), ' ', h('kbd', {}, '↑'), ' pick a name, ', h('kbd', {}, 'Tab'), ' takes it · ',
      h('kbd', {}, 'Esc'), ' closes'),
    staleNote,
    keyNote,  // under the prompt, where the eyes are when Ctrl+Enter did nothing
    area,
    gateArea,
    actions));

  function closeList() {
    suggestions = [];
    active = -1;
    list.hidden = true;
    replace(list);
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
  }

  function paint() {
    replace(list, suggestions.map((s, i) => h('li', {id: `suggestion-${i}`, role: 'option',
      'aria-selected': String(i === active), class: i === active ? 'active' : '', dataset: {name: s.name},
      onmousedown: e => { e.preventDefault(); accept(i); }},
    h('span', {class: 'name'}, s.name),
    h('span', {class: 'muted'}, ` ${s.resource_type} · ${s.places.join(', ')}`))));
    list.hidden = suggestions.length === 0;
    input.setAttribute('aria-expanded', String(!list.hidden));
    if (active >= 0) input.setAttribute('aria-activedescendant', `suggestion-${active}`);
    else input.removeAttribute('aria-activedescendant');
  }

  function accept(i) {
    const word = currentWord(input);
    const chosen = suggestions[i];
    if (!chosen) return;
    const start = word ? word.start : input.value.length;
    const end = word ? word.end : input.value.length;
    const rest = input.value.slice(end);
    const insert = chosen.name + (rest.startsWith(' ') ? '' : ' ');
    input.value = input.value.slice(0, start) + insert + rest;
    const caret = start + insert.length;
    input.setSelectionRange(caret, caret);
    closeList();
    input.focus();
  }

  async function suggest() {
    const word = currentWord(input);
    if (pending) pending.abort();
    if (!word || word.text.length < MIN_CHARS) { closeList(); return; }
    pending = new AbortController();
    const asked = generation;
    try {
      const data = await api(`/v1/autocomplete${qs({q: word.text, limit: 8})}`, {signal: pending.signal});
      // Stale: typed on meanwhile, planned meanwhile, or the box lost focus.
      if (currentWord(input)?.text !== word.text || asked !== generation || document.activeElement !== input) return;
      // Keep the highlighted name highlighted when a later answer still has it (answers race keystrokes).
      const chosen = active >= 0 && suggestions[active] ? suggestions[active].name : null;
      suggestions = data.suggestions.filter(s => s.name.toLowerCase() !== word.text.toLowerCase() || data.suggestions.length > 1);
      active = chosen ? suggestions.findIndex(s => s.name === chosen) : -1;
      paint();
    } catch (err) {
      if (err.name !== 'AbortError') closeList();
    }
  }

  input.addEventListener('input', () => { suggest(); setButtons(); });
  input.addEventListener('blur', () => setTimeout(closeList, 100));
  input.addEventListener('keydown', event => {
    const open = !list.hidden && suggestions.length > 0;
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      closeList();
      quickRun();
    } else if (event.key === 'ArrowDown' && open) {
      event.preventDefault();
      active = (active + 1) % suggestions.length;
      paint();
    } else if (event.key === 'ArrowUp' && open) {
      event.preventDefault();
      active = active <= 0 ? suggestions.length - 1 : active - 1;
      paint();
    } else if ((event.key === 'Enter' || event.key === 'Tab') && open && active >= 0) {
      event.preventDefault();
      accept(active);
    } else if (event.key === 'Escape') {
      if (open) { event.preventDefault(); closeList(); }
    } else if (event.key === 'Enter' && open) {
      closeList();  // Enter with no suggestion chosen plans what is typed
    }
  });
  view.addEventListener('keydown', event => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey) && event.target !== input) {
      event.preventDefault();
      quickRun();
    }
  });

  /** The plan on screen is for the prompt that was planned: once the box says something else, it is stale. */
  function stale() {
    return Boolean(current) && input.value.trim() !== current.prompt;
  }

  function setButtons() {
    const runnable = current && canRun(current.plan) && !current.ran;
    const ready = runnable && !busy && !stale() && (!current.gate || current.gate.ready());
    if (current) current.card.classList.toggle('stale', stale() && !current.ran);
    staleNote.hidden = !(current && stale() && !current.ran);
    actions.hidden = !current;
    actions.classList.toggle('sticky', Boolean(runnable));  // in sight while there is something to decide
    runButton.disabled = !ready;
    runButton.hidden = Boolean(current) && !runnable;
    if (current) runButton.textContent = actionLabel(current.plan, current.production);
    const c = (current && current.plan.confirmation) || {};
    readyHint.textContent = !runnable || !current.gate || current.gate.ready() ? ''
      : c.phrase && !current.gate.typedOk() ? `To enable it, type ${c.phrase} in the plan's approval box (go there)`
        : "To enable it, tick the plan's out-of-date data box (go there)";
    readyHint.hidden = !readyHint.textContent;
    runButton.classList.toggle('danger-action', Boolean(current && current.production.length && isMutating(current.plan)));
    openButton.disabled = !current || Boolean(current.plan.clarification);
  }

  function forget() {
    if (current && current.watch) current.watch.stop();
    current = null;
    replace(gateArea);
    keyNote.hidden = true;
  }

  async function plan(prompt = input.value.trim()) {
    if (!prompt || busy) return;
    generation += 1;
    if (pending) pending.abort();
    closeList();
    busy = true;
    forget();
    setButtons();
    replace(area, h('p', {class: 'muted'}, 'Planning…'));
    try {
      const response = await api('/v1/plan', {method: 'POST', body: {prompt}});
      const shown = await fetchPlanView(response.request_id);
      const card = renderPlan(shown.plan, shown.production, {onChoose: choose});
      const gate = canRun(shown.plan) ? confirmationGate(shown.plan, 'ask') : null;
      current = {plan: shown.plan, production: shown.production, card, gate, ran: false, prompt};
      replace(area, card);
      replace(gateArea, gate && gate.element);
      if (gate) gate.onChange(() => { setButtons(); if (gate.ready()) runButton.scrollIntoView({block: 'nearest'}); });
      if (finished(shown.status)) ranElsewhere(shown);
      current.watch = watchPlan(shown.plan.request_id, shown.status, ranElsewhere);
    } catch (err) {
      replace(area, errorBox(err, 'Could not plan'));
    } finally {
      busy = false;
      setButtons();
    }
  }

  /** The approval window (or another tab) ran or denied this plan: show that here, with its report. */
  function ranElsewhere(shown) {
    if (!current || current.plan.request_id !== shown.plan.request_id || !finished(shown.status)) return;
    if (current.here) return;  // this view runs it: its own report comes with the answer
    current.ran = true;
    if (shown.status === 'done' && shown.report) showReport(current.card, current.plan, shown.report);
    markFinished(current.card, shown.status, true);
    replace(gateArea);
    keyNote.hidden = true;
    setButtons();
  }

  /** A clarification's answer: a resource is pinned by its account and region, then planned again; a
   * playbook candidate's label goes into the box for the operator to finish (it names no target). */
  function choose(candidate) {
    const place = [candidate.account_name, candidate.region].filter(Boolean).join(' ');
    input.focus();
    if (candidate.kind === 'resource' && place) {
      input.value = `${(current ? current.prompt : input.value).trim()} in ${place}`;
      plan();
    } else {
      input.value = candidate.label;
      setButtons();
    }
  }

  /** Ctrl+Enter: runs the plan on screen only when it needs no typed name and no acknowledgement. */
  function quickRun() {
    if (!current || !canRun(current.plan) || current.ran) return;
    if (!quickRunAllowed(current.plan)) {
      keyNote.hidden = false;
      const c = current.plan.confirmation || {};
      const action = `“${actionLabel(current.plan, current.production)}”`;
      keyNote.textContent = c.phrase
        ? `Ctrl+Enter does not run a ${current.plan.risk_assessment.level === 'critical' ? 'critical' : 'production'} plan: `
          + `type ${c.phrase} below, then press ${action}.`
        : c.stale ? `Ctrl+Enter does not run a plan on data that may be out of date: tick the box below, then press ${action}.`
          : `Ctrl+Enter runs only low-risk plans: this one is ${current.plan.risk_assessment.level} risk; press ${action}.`;
      return;
    }
    approveAndRun();
  }

  async function approveAndRun() {
    if (!current || !canRun(current.plan) || busy || current.ran) return;
    if (stale()) { staleNote.hidden = false; return; }
    if (current.gate && !current.gate.ready()) return;
    busy = true;
    setButtons();
    const mine = current;
    const {plan: p, card} = mine;
    mine.here = true;
    try {
      let approvalId = null;
      if (isMutating(p)) {
        const approval = await api('/v1/approve', {method: 'POST', body: {request_id: p.request_id, ...(mine.gate ? mine.gate.body() : {})}});
        approvalId = approval.approval_id;
      }
      mine.ran = true;
      replace(gateArea);
      keyNote.hidden = true;
      const outcome = await executePlan(card, p, approvalId);
      if (current === mine) card.querySelector('[data-testid=run-outcome]')?.focus();
      return outcome;
    } catch (err) {
      // Refused before anything ran (not approved, expired, name not typed): the operator may try again,
      // unless the service says the plan already ran (from another window).
      if (err.status === 403 || err.status === 409) { mine.ran = false; mine.here = false; }
      if (!card.querySelector('.run-result .error-box')) replace(card.querySelector('.run-result'), errorBox(err, 'Not run'));
      if (mine.watch) mine.watch.check();
    } finally {
      busy = false;
      setButtons();
    }
    return null;
  }

  function openApproval() {
    if (!current) return;
    const route = `plan/${current.plan.request_id}`;
    if (inDesktop() && typeof window.pywebview.api.open_window === 'function') window.pywebview.api.open_window(route);
    else location.hash = `#${route}`;
  }

  async function showSyncFailures() {
    try {
      const status = await api('/v1/status');
      const sentences = failureSentences(status.scopes);
      if (!sentences.length) return;
      replace(syncAlert, h('strong', {}, 'Some data may be out of date. '),
        sentences.length === 1 ? sentences[0].text
          : `The last sync failed in ${sentences.length} places (${sentences.map(s => s.region ? `${s.account} ${s.region}` : s.account).join(', ')}). `,
        ' ', h('a', {href: '#explorer'}, 'See the explorer'));
      syncAlert.hidden = false;
    } catch { /* the header says when the endpoint is gone */ }
  }

  // A launcher: each time the window is shown again (the desktop shell sends 'cloudops:shown'; a browser
  // tab fires visibilitychange), the prompt has the focus at the top, never a button the operator left
  // it on, and the plan on screen is checked again (it may have run in the approval window).
  const onShown = () => {
    if (document.visibilityState !== 'visible') return;
    window.scrollTo(0, 0);
    input.focus({preventScroll: true});
    if (current && current.watch) current.watch.check();
  };
  window.addEventListener('cloudops:shown', onShown);
  document.addEventListener('visibilitychange', onShown);

  input.focus();
  showSyncFailures();
  return () => {
    if (pending) pending.abort();
    forget();
    window.removeEventListener('cloudops:shown', onShown);
    document.removeEventListener('visibilitychange', onShown);
  };
}
