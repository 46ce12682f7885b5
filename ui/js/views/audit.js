// The audit trail, newest first: plans, approvals, denials, refusals and executed steps. Each row says
// what it was about (the resource by name), where (the account by name, not its id) and who decided.

import {api, qs} from '../api.js';
import {errorBox, formatTime, h, replace} from '../dom.js';

const KINDS = ['', 'plan', 'approval', 'denial', 'refusal', 'step'];

export async function render(view) {
  const kind = h('select', {id: 'audit-kind', onchange: () => paint()},
    KINDS.map(k => h('option', {value: k}, k || 'all kinds')));
  const limit = h('select', {id: 'audit-limit', onchange: () => load()},
    [50, 200, 1000].map(n => h('option', {value: String(n), selected: n === 200}, String(n))));
  const table = h('div', {class: 'audit-table table-wrap', 'aria-live': 'polite'});
  let events = [];
  let accountNames = new Map();  // account id -> name, from config.yaml (for rows written with the id only)
  replace(view, h('section', {class: 'audit'},
    h('div', {class: 'section-head'}, h('h1', {}, 'Audit trail'),
      h('button', {type: 'button', id: 'audit-refresh', onclick: () => load()}, 'Refresh')),
    h('div', {class: 'filters'},
      h('div', {class: 'field'}, h('label', {for: 'audit-kind'}, 'Kind'), kind),
      h('div', {class: 'field'}, h('label', {for: 'audit-limit'}, 'Last'), limit)),
    table));

  function accountOf(e) {
    const name = e.account_name || (e.account_id && accountNames.get(e.account_id));
    const where = [name || e.account_id, e.region].filter(Boolean).join(' · ');
    return where || '—';
  }

  function paint() {
    const shown = kind.value ? events.filter(e => e.kind === kind.value) : events;
    if (!shown.length) {
      replace(table, h('p', {class: 'muted'}, events.length ? 'No events of this kind.' : 'No events yet: plans, approvals and runs appear here.'));
      return;
    }
    // A step was approved by whoever approved its plan: say so on the step rows too.
    const approvedBy = new Map(events.filter(e => e.kind === 'approval' && e.actor).map(e => [e.request_id, e.actor]));
    replace(table, h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, ['When', 'Kind', 'Resource', 'Account · region', 'Who', 'Operation', 'Outcome', 'Prompt / detail', 'AWS request']
        .map(t => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, shown.map(e => h('tr', {dataset: {kind: e.kind, requestId: e.request_id || ''}},
        h('td', {}, formatTime(e.at)), h('td', {}, h('span', {class: `kind kind-${e.kind}`}, e.kind)),
        h('td', {'data-col': 'resource'}, e.resource || '—'),
        h('td', {'data-col': 'account'}, accountOf(e)),
        h('td', {'data-col': 'actor'}, e.actor || (approvedBy.has(e.request_id) && e.kind === 'step'
          ? h('span', {class: 'muted'}, `approved by ${approvedBy.get(e.request_id)}`) : '—')),
        h('td', {}, e.operation || ''), h('td', {}, e.outcome || ''),
        h('td', {class: 'wrap'}, [e.prompt, e.detail].filter(Boolean).join(' — ')),
        h('td', {class: 'mono'}, e.aws_request_id || ''))))));
  }

  let latest = 0;  // a slower earlier answer must not replace a newer one

  async function load() {
    const mine = ++latest;
    try {
      const fresh = await api(`/v1/audit${qs({limit: limit.value})}`);
      if (mine !== latest) return;
      events = fresh;
      paint();
    } catch (err) {
      replace(table, errorBox(err));
    }
  }

  kind.focus();
  try {
    const settings = await api('/v1/settings');
    accountNames = new Map(settings.accounts.filter(a => a.account_id).map(a => [a.account_id, a.name]));
  } catch { /* ids stay ids */ }
  await load();
  return null;
}
