// The estate explorer: account → region → service with counts (from the index), filters, a search box
// (the hybrid lookup), a resource's full document, and sync status per scope with a Sync now button.

import {api, qs} from '../api.js';
import {errorBox, formatTime, h, replace, toast} from '../dom.js';

const FILTERS = [['account', 'Account'], ['region', 'Region'], ['service', 'Service'], ['type', 'Type'], ['state', 'State']];

function buildTree(groups) {
  const accounts = new Map();
  for (const g of groups) {
    const acc = accounts.get(g.account_id) || {id: g.account_id, name: g.account_name, count: 0, regions: new Map()};
    acc.count += g.count;
    const reg = acc.regions.get(g.region) || {name: g.region, count: 0, services: new Map()};
    reg.count += g.count;
    reg.services.set(g.service, (reg.services.get(g.service) || 0) + g.count);
    acc.regions.set(g.region, reg);
    accounts.set(g.account_id, acc);
  }
  return [...accounts.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export async function render(view) {
  const filters = {account: '', region: '', service: '', type: '', state: ''};
  let all = null;

  const searchInput = h('input', {id: 'explorer-search', type: 'search', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'env=prod AND app=main, postgres in staging, orders-db…'});
  const searchForm = h('form', {class: 'search-row', role: 'search', onsubmit: e => { e.preventDefault(); search(); }},
    h('label', {for: 'explorer-search'}, 'Search the index'), searchInput, h('button', {type: 'submit'}, 'Search'));
  const selects = Object.fromEntries(FILTERS.map(([key]) => [key, h('select', {id: `filter-${key}`,
    onchange: e => { filters[key] = e.target.value; list(); }})]));
  const filterBar = h('div', {class: 'filters', role: 'group', 'aria-label': 'Filters'},
    FILTERS.map(([key, label]) => h('div', {class: 'field'}, h('label', {for: `filter-${key}`}, label), selects[key])),
    h('button', {type: 'button', onclick: () => resetFilters()}, 'Clear filters'));
  const tree = h('nav', {class: 'tree', 'aria-label': 'Accounts, regions and services'});
  const results = h('section', {class: 'results', 'aria-live': 'polite', 'aria-label': 'Resources'});
  const doc = h('section', {class: 'document', 'aria-label': 'Resource document', hidden: true});
  const statusBox = h('section', {class: 'sync-status', 'aria-labelledby': 'sync-title'});

  replace(view, h('section', {class: 'explorer'},
    h('h1', {}, 'Estate explorer'),
    searchForm, filterBar,
    h('div', {class: 'explorer-grid'}, tree, h('div', {class: 'explorer-main'}, doc, results)),
    statusBox));

  function option(value, label, selected) {
    return h('option', {value, selected: value === selected}, label);
  }

  function paintFilters(facets) {
    const lists = {
      account: facets.accounts.map(a => [a.account_id, `${a.account_name} (${a.account_id})`]),
      region: facets.regions.map(r => [r, r]), service: facets.services.map(s => [s, s]),
      type: facets.resource_types.map(t => [t, t]), state: facets.states.map(s => [s, s]),
    };
    for (const [key] of FILTERS) {
      replace(selects[key], option('', 'any', filters[key]), lists[key].map(([v, l]) => option(v, l, filters[key])));
    }
  }

  // One tab stop for the whole tree: ↑/↓ (and Home/End) move between its nodes, Enter picks one.
  tree.addEventListener('keydown', event => {
    const nodes = [...tree.querySelectorAll('button.node')];
    const at = nodes.indexOf(document.activeElement);
    if (at < 0) return;
    const to = {ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: nodes.length - 1}[event.key];
    if (to === undefined || !nodes[to]) return;
    event.preventDefault();
    nodes[at].tabIndex = -1;
    nodes[to].tabIndex = 0;
    nodes[to].focus();
  });

  function paintTree() {
    const nodes = buildTree(all.groups);
    const pick = (account, region, service) => {
      Object.assign(filters, {account: account || '', region: region || '', service: service || ''});
      paintFilters(all.facets);
      list();  // repaints the tree at once: keep the focus on the node just picked
      tree.querySelector('button.node.on')?.focus();
    };
    const isOn = (a, r, s) => filters.account === (a || '') && filters.region === (r || '') && filters.service === (s || '');
    const node = (label, count, data, onclick, on) => h('button', {type: 'button', class: on ? 'node on' : 'node',
      'aria-pressed': String(on), tabindex: on ? '0' : '-1', dataset: {...data, count: String(count)}, onclick},
    h('span', {}, label), h('span', {class: 'count'}, String(count)));
    replace(tree, h('p', {class: 'muted'}, `${all.total} resources`),
      h('ul', {role: 'list'},
        h('li', {}, node('All accounts', all.total, {scope: 'all'}, () => pick(), isOn())),
        nodes.map(acc => h('li', {},
          node(`${acc.name} · ${acc.id}`, acc.count, {account: acc.name, accountId: acc.id}, () => pick(acc.id), isOn(acc.id)),
          h('ul', {}, [...acc.regions.values()].sort((a, b) => a.name.localeCompare(b.name)).map(reg => h('li', {},
            node(reg.name, reg.count, {account: acc.name, region: reg.name}, () => pick(acc.id, reg.name), isOn(acc.id, reg.name)),
            h('ul', {}, [...reg.services.entries()].sort().map(([svc, n]) => h('li', {},
              node(svc, n, {account: acc.name, region: reg.name, service: svc}, () => pick(acc.id, reg.name, svc),
                isOn(acc.id, reg.name, svc))))))))))));
  }

  function resourceTable(rows, extra) {
    if (!rows.length) return h('p', {class: 'muted'}, 'Nothing matches.');
    return h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, ['Name', 'Type', 'Account', 'Region', 'State', extra ? 'Why' : null]
        .filter(Boolean).map(t => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, rows.map(r => h('tr', {},
        h('td', {}, h('button', {type: 'button', class: 'link', onclick: () => open(r.id), dataset: {id: r.id}}, r.name)),
        h('td', {}, r.resource_type), h('td', {}, r.account_name), h('td', {}, r.region), h('td', {}, r.state || '—'),
        extra ? h('td', {class: 'muted'}, (r.why || []).join(', ')) : null))));
  }

  let shown = 0;  // answers can arrive out of order: only the latest request may paint the results

  async function list() {
    const mine = ++shown;
    paintTree();
    replace(results, h('p', {class: 'muted'}, 'Loading…'));
    try {
      const data = await api(`/v1/explorer${qs({...filters, limit: 200})}`);
      if (mine !== shown) return;
      replace(results, h('h2', {}, `${data.total} resource${data.total === 1 ? '' : 's'}`,
        data.total > data.resources.length ? ` (first ${data.resources.length})` : ''),
      resourceTable(data.resources, false));
    } catch (err) {
      if (mine === shown) replace(results, errorBox(err));
    }
  }

  async function search() {
    const query = searchInput.value.trim();
    if (!query) { list(); return; }
    const mine = ++shown;
    replace(results, h('p', {class: 'muted'}, 'Searching…'));
    try {
      const hits = await api('/v1/search', {method: 'POST', body: {query, limit: 50}});
      if (mine !== shown) return;
      replace(results, h('h2', {}, `Search: ${hits.length} hit${hits.length === 1 ? '' : 's'}`), resourceTable(hits, true));
    } catch (err) {
      if (mine === shown) replace(results, errorBox(err, 'Search'));
    }
  }

  async function open(id) {
    doc.hidden = false;
    replace(doc, h('p', {class: 'muted'}, 'Loading…'));
    try {
      const d = await api(`/v1/resource${qs({id})}`);
      const close = h('button', {type: 'button', onclick: () => { doc.hidden = true; results.querySelector(`button[data-id="${CSS.escape(id)}"]`)?.focus(); }}, 'Close');
      const tags = Object.entries(d.tags || {});
      replace(doc, h('div', {class: 'doc-head'}, h('h2', {tabindex: '-1'}, d.name), close),
        h('dl', {class: 'facts'},
          [['Type', d.resource_type], ['Id', d.resource_id], ['ARN', d.arn], ['Account', `${d.account_name} (${d.account_id})`],
            ['Region', d.region], ['State', d.state || '—'], ['Tags', tags.length ? tags.map(([k, v]) => `${k}=${v}`).join(', ') : '—']]
            .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
        h('details', {open: true}, h('summary', {}, 'Full document'),
          h('pre', {class: 'json', tabindex: '0', 'data-testid': 'resource-document'}, JSON.stringify(d, null, 2))));
      doc.querySelector('h2').focus();
    } catch (err) {
      replace(doc, errorBox(err));
    }
  }

  function resetFilters() {
    for (const key of Object.keys(filters)) filters[key] = '';
    searchInput.value = '';
    paintFilters(all.facets);
    list();
  }

  async function loadStatus() {
    const button = h('button', {type: 'button', id: 'sync-now', onclick: () => syncNow(button)}, 'Sync now');
    try {
      const status = await api('/v1/status');
      const failed = status.scopes.filter(s => s.last_error && (!s.last_success || s.last_error_at > s.last_success));
      replace(statusBox, h('div', {class: 'section-head'}, h('h2', {id: 'sync-title'}, 'Sync status'), button),
        h('p', {class: failed.length ? 'error' : 'muted'}, `${status.documents} documents in the index, ${status.scopes.length} scopes` +
          (failed.length ? `, ${failed.length} failing: ${failed.map(s => s.scope).join(', ')}.` : ', none failing.')),
        status.scopes.length ? h('details', {open: failed.length > 0}, h('summary', {}, `Every scope (${status.scopes.length})`),
          h('table', {class: 'grid'},
          h('thead', {}, h('tr', {}, ['Account', 'Region', 'Service', 'Resources', 'Last success', 'Last error']
            .map(t => h('th', {scope: 'col'}, t)))),
          h('tbody', {}, status.scopes.map(s => h('tr', {class: s.last_error ? 'has-error' : ''},
            h('td', {}, s.account_name), h('td', {}, s.region), h('td', {}, s.service), h('td', {}, String(s.count)),
            h('td', {}, formatTime(s.last_success)),
            h('td', {class: s.last_error ? 'error' : 'muted'}, s.last_error ? `${s.last_error} (${formatTime(s.last_error_at)}, retries ${s.retries})` : '—'))))))
          : h('p', {}, 'Never synced: press Sync now.'));
    } catch (err) {
      replace(statusBox, h('h2', {id: 'sync-title'}, 'Sync status'), errorBox(err), button);
    }
  }

  async function syncNow(button) {
    button.disabled = true;
    button.textContent = 'Syncing…';
    try {
      const report = await api('/v1/sync', {method: 'POST', body: {}});
      toast(`Sync done: ${report.added} added, ${report.updated} updated, ${report.removed} removed` +
        (report.errors.length ? `, ${report.errors.length} scopes failed` : ''));
      await reload();
    } catch (err) {
      replace(statusBox, errorBox(err, 'Sync failed'));
      await loadStatus();
    }
  }

  async function reload() {
    try {
      all = await api('/v1/explorer?limit=1');
      paintFilters(all.facets);
      await Promise.all([list(), loadStatus()]);
    } catch (err) {
      replace(results, errorBox(err));
    }
  }

  searchInput.focus();  // before loading: focus must not jump once the operator has moved on
  await reload();
  return null;
}
