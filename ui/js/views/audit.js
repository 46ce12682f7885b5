// The audit trail, newest first: plans, approvals, denials, refusals and executed steps.

import {api, qs} from '../api.js';
import {errorBox, formatTime, h, replace} from '../dom.js';

const KINDS = ['', 'plan', 'approval', 'denial', 'refusal', 'step'];

export async function render(view) {
  const kind = h('select', {id: 'audit-kind', onchange: () => paint()},
    KINDS.map(k => h('option', {value: k}, k || 'all kinds')));
  const limit = h('select', {id: 'audit-limit', onchange: () => load()},
    [50, 200, 1000].map(n => h('option', {value: String(n), selected: n === 200}, String(n))));
  const table = h('div', {class: 'audit-table', 'aria-live': 'polite'});
  let events = [];
  replace(view, h('section', {class: 'audit'},
    h('div', {class: 'section-head'}, h('h1', {}, 'Audit trail'),
      h('button', {type: 'button', id: 'audit-refresh', onclick: () => load()}, 'Refresh')),
    h('div', {class: 'filters'},
      h('div', {class: 'field'}, h('label', {for: 'audit-kind'}, 'Kind'), kind),
      h('div', {class: 'field'}, h('label', {for: 'audit-limit'}, 'Last'), limit)),
    table));

  function paint() {
    const shown = kind.value ? events.filter(e => e.kind === kind.value) : events;
    if (!shown.length) { replace(table, h('p', {class: 'muted'}, 'No events.')); return; }
    replace(table, h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, ['When', 'Kind', 'Operation', 'Outcome', 'Prompt / detail', 'Account · region', 'AWS request']
        .map(t => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, shown.map(e => h('tr', {dataset: {kind: e.kind, requestId: e.request_id || ''}},
        h('td', {}, formatTime(e.at)), h('td', {}, h('span', {class: `kind kind-${e.kind}`}, e.kind)),
        h('td', {}, e.operation || ''), h('td', {}, e.outcome || ''),
        h('td', {}, [e.prompt, e.detail].filter(Boolean).join(' — ')),
        h('td', {}, [e.account_id, e.region].filter(Boolean).join(' · ')),
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
  await load();
  return null;
}
