// Quick ask: one prompt box with resource-name suggestions from the local index as you type; Enter
// plans and shows the plan right under it; Ctrl+Enter (or the button) approves and runs it.

import {api, inDesktop, qs} from '../api.js';
import {errorBox, h, replace} from '../dom.js';
import {canRun, executePlan, fetchPlanView, isMutating, renderPlan} from '../plan.js';

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
  let current = null;  // {plan, production, card}
  let busy = false;
  let generation = 0;  // bumped when a plan is asked for: suggestions asked before it are dropped

  const input = h('input', {id: 'prompt', type: 'text', role: 'combobox', 'aria-autocomplete': 'list',
    'aria-expanded': 'false', 'aria-controls': 'suggestions', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'Stop pg-instance-main1', 'aria-describedby': 'ask-hint', maxlength: '4000'});
  const list = h('ul', {id: 'suggestions', role: 'listbox', class: 'suggestions', hidden: true, 'aria-label': 'Resource names'});
  const planButton = h('button', {type: 'submit', class: 'primary'}, 'Plan');
  const runButton = h('button', {type: 'button', id: 'approve-run', disabled: true,
    'aria-keyshortcuts': 'Control+Enter', onclick: () => approveAndRun()}, 'Approve & run');
  const openButton = h('button', {type: 'button', id: 'open-approval', disabled: true,
    onclick: () => openApproval()}, 'Open approval view');
  const area = h('div', {id: 'plan-area', 'aria-live': 'polite'});
  const staleNote = h('p', {class: 'hint stale-note', id: 'stale-note', hidden: true},
    'The prompt changed since this plan: press Enter to plan it again before running.');
  const form = h('form', {class: 'ask-form', role: 'search', 'aria-label': 'Ask', onsubmit: e => { e.preventDefault(); plan(); }},
    h('label', {for: 'prompt', class: 'big-label'}, 'What should happen?'),
    h('div', {class: 'ask-row'}, h('div', {class: 'combo'}, input, list), planButton));

  replace(view, h('section', {class: 'ask'},
    h('h1', {class: 'sr-only'}, 'Quick ask'),
    form,
    h('p', {id: 'ask-hint', class: 'hint'},
      h('kbd', {}, 'Enter'), ' plans · ', h('kbd', {}, 'Ctrl'), '+', h('kbd', {}, 'Enter'), ' approves and runs · ',
      h('kbd', {}, '↓'), ' ', h('kbd', {}, '↑'), ' pick a name, ', h('kbd', {}, 'Tab'), ' takes it · ',
      h('kbd', {}, 'Esc'), ' closes'),
    h('div', {class: 'actions'}, runButton, openButton),
    staleNote,
    area));

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
      approveAndRun();
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
      approveAndRun();
    }
  });

  /** The plan on screen is for the prompt that was planned: once the box says something else, it is stale. */
  function stale() {
    return Boolean(current) && input.value.trim() !== current.prompt;
  }

  function setButtons() {
    const ready = current && canRun(current.plan) && !busy && !current.ran && !stale();
    if (current) current.card.classList.toggle('stale', stale() && !current.ran);
    staleNote.hidden = !(current && stale() && !current.ran);
    runButton.disabled = !ready;
    if (current && current.production.length && ready) runButton.textContent = 'Approve & run in PRODUCTION';
    else runButton.textContent = current && canRun(current.plan) && !isMutating(current.plan) ? 'Run' : 'Approve & run';
    openButton.disabled = !current || Boolean(current.plan.clarification);
  }

  async function plan(prompt = input.value.trim()) {
    if (!prompt || busy) return;
    generation += 1;
    if (pending) pending.abort();
    closeList();
    busy = true;
    current = null;
    setButtons();
    replace(area, h('p', {class: 'muted'}, 'Planning…'));
    try {
      const response = await api('/v1/plan', {method: 'POST', body: {prompt}});
      const shown = await fetchPlanView(response.request_id);
      const card = renderPlan(shown.plan, shown.production, {onChoose: choose});
      current = {plan: shown.plan, production: shown.production, card, ran: false, prompt};
      replace(area, card);
    } catch (err) {
      replace(area, errorBox(err, 'Could not plan'));
    } finally {
      busy = false;
      setButtons();
    }
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

  async function approveAndRun() {
    if (!current || !canRun(current.plan) || busy || current.ran) return;
    if (stale()) { staleNote.hidden = false; return; }
    busy = true;
    setButtons();
    const {plan: p, card} = current;
    try {
      let approvalId = null;
      if (isMutating(p)) {
        const approval = await api('/v1/approve', {method: 'POST', body: {request_id: p.request_id}});
        approvalId = approval.approval_id;
      }
      current.ran = true;
      await executePlan(card, p, approvalId);
    } catch (err) {
      // Refused before anything ran (not approved, expired, denied): the operator may try again.
      if (err.status === 403 || err.status === 409) current.ran = false;
      if (!card.querySelector('.run-result .error-box')) replace(card.querySelector('.run-result'), errorBox(err, 'Not run'));
    } finally {
      busy = false;
      setButtons();
    }
  }

  function openApproval() {
    if (!current) return;
    const route = `plan/${current.plan.request_id}`;
    if (inDesktop() && typeof window.pywebview.api.open_window === 'function') window.pywebview.api.open_window(route);
    else location.hash = `#${route}`;
  }

  input.focus();
  return () => { if (pending) pending.abort(); };
}
