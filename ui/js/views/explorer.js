// The estate explorer: account → region → service with counts (from the index), filters, a search box
// (the hybrid lookup), a resource's full document, and sync status with a Sync now button. How old each
// resource's data is shows on every row and on the document; a failed sync is one sentence per failing
// account and region at the top of the page, with the raw rows folded away at the bottom.

import {api, qs} from '../api.js';
import {ageLabel, ageWords, errorBox, h, parseTime, replace, toast} from '../dom.js';
import {errorInWords, failureSentences, isFailing} from '../syncstatus.js';

const FILTERS = [['account', 'Account'], ['region', 'Region'], ['service', 'Service'], ['type', 'Type'], ['state', 'State']];
const SYNC_POLL_MS = 1000;
const SLOW_START_S = 20;  // no scope done by then: say that AWS may not be answering

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

/** The lookup's reasons for a hit ('exact orders', 'fuzzy name 90', 'words 1.00', 'semantic 0.58', tag
 * matches) in words; the scores stay in the cell's tooltip. */
function whyInWords(why) {
  const words = (why || []).map(reason => {
    const fuzzy = reason.match(/^fuzzy name (\d+)/);
    if (/^exact /.test(reason)) return 'exact name';
    if (fuzzy) return `name ${fuzzy[1]}% alike`;
    if (/^words /.test(reason)) return 'same words';
    if (/^semantic /.test(reason)) return 'similar meaning';
    return reason;
  });
  return [...new Set(words)].slice(0, 2).join(', ');
}

/** The element's top and bottom are inside the window. */
function inView(el) {
  const box = el.getBoundingClientRect();
  return box.top >= 0 && box.top < window.innerHeight;
}

export async function render(view) {
  const filters = {account: '', region: '', service: '', type: '', state: ''};
  let all = null;
  let scopes = new Map();  // 'account_id/region/service' -> sync status row: each resource's data age
  let manualErrors = null;  // this page's Sync now report's errors (fresher than the scheduler's last run)

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
  const syncAlert = h('div', {class: 'sync-alert', role: 'alert', hidden: true, 'data-testid': 'sync-failures'});
  const syncButton = h('button', {type: 'button', id: 'sync-now', onclick: () => syncNow()}, 'Sync now');
  const syncProgress = h('span', {class: 'muted sync-progress', role: 'status', 'aria-live': 'polite'});

  replace(view, h('section', {class: 'explorer'},
    h('div', {class: 'section-head'}, h('h1', {}, 'Estate explorer'), h('div', {class: 'sync-control'}, syncProgress, syncButton)),
    syncAlert,
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

  /** When the index last read a resource: its own synced_at, else its scope's last success. */
  function syncedAt(r) {
    if (r.synced_at) return r.synced_at;
    const scope = scopes.get(`${r.account_id}/${r.region}/${r.service}`) || scopes.get(`${r.account_id}/global/${r.service}`);
    return scope ? scope.last_success : null;
  }

  function scopeFailing(r) {
    const scope = scopes.get(`${r.account_id}/${r.region}/${r.service}`) || scopes.get(`${r.account_id}/global/${r.service}`);
    return Boolean(scope && isFailing(scope));
  }

  function ageCell(r) {
    return h('td', {class: scopeFailing(r) ? 'age-cell failing' : 'age-cell'}, ageLabel(syncedAt(r)),
      scopeFailing(r) ? h('span', {class: 'error'}, ' · last sync failed') : null);
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
    const pick = async (account, region, service) => {
      Object.assign(filters, {account: account || '', region: region || '', service: service || ''});
      paintFilters(all.facets);
      const listed = list();  // repaints the tree at once: keep the focus on the node just picked
      tree.querySelector('button.node.on')?.focus({preventScroll: true});
      await listed;
      // The results are what the click was for: keep them in view (the tree scrolls on its own).
      if (!inView(results)) results.scrollIntoView({block: 'start'});
    };
    const isOn = (a, r, s) => filters.account === (a || '') && filters.region === (r || '') && filters.service === (s || '');
    const node = (label, count, data, onclick, on) => h('button', {type: 'button', class: on ? 'node on' : 'node',
      'aria-pressed': String(on), tabindex: on ? '0' : '-1', dataset: {...data, count: String(count)}, onclick},
    h('span', {}, label), h('span', {class: 'count'}, String(count)));
    const scrolled = tree.scrollTop;
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
    tree.scrollTop = scrolled;
  }

  function resourceTable(rows, extra) {
    if (!rows.length) return h('p', {class: 'muted'}, 'Nothing matches.');
    return h('div', {class: 'table-wrap'}, h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, ['Name', 'Type', 'Account', 'Region', 'State', 'Data', extra ? 'Why' : null]
        .filter(Boolean).map(t => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, rows.map(r => h('tr', {},
        h('td', {}, h('button', {type: 'button', class: 'link', onclick: () => open(r.id), dataset: {id: r.id}}, r.name)),
        h('td', {}, r.resource_type), h('td', {}, r.account_name), h('td', {}, r.region), h('td', {}, r.state || '—'),
        ageCell(r),
        extra ? h('td', {class: 'muted', title: (r.why || []).join(', ')}, whyInWords(r.why)) : null)))));
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
      // A single name with no resource of that name: say so, so the closest matches are not read as it.
      const oneName = /^[\w.:/-]+$/.test(query) && /[-_.\d]/.test(query);
      const exact = hits.some(r => [r.name, r.resource_id].some(n => String(n || '').toLowerCase() === query.toLowerCase()));
      const heading = oneName && !exact
        ? `No resource is named “${query}” in the index (it may have been deleted). ${hits.length ? 'Closest matches:' : ''}`
        : `Search: ${hits.length} hit${hits.length === 1 ? '' : 's'}`;
      replace(results, h('h2', {'data-testid': 'search-heading'}, heading), hits.length ? resourceTable(hits, true) : null);
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
      const failing = scopeFailing(d);
      replace(doc, h('div', {class: 'doc-head'}, h('h2', {tabindex: '-1'}, d.name), close),
        failing ? h('p', {class: 'error', role: 'alert'}, 'The last sync of this resource’s account, region and service failed: what is shown may be out of date.') : null,
        h('dl', {class: 'facts'},
          [['Type', d.resource_type], ['Id', d.resource_id], ['ARN', d.arn], ['Account', `${d.account_name} (${d.account_id})`],
            ['Region', d.region], ['State', d.state || '—'], ['Data', ageLabel(syncedAt(d))],
            ['Tags', tags.length ? tags.map(([k, v]) => `${k}=${v}`).join(', ') : '—']]
            .map(([k, v]) => [h('dt', {}, k), h('dd', {'data-field': k}, v)])),
        h('details', {open: true}, h('summary', {}, 'Full document'),
          h('pre', {class: 'json', tabindex: '0', 'data-testid': 'resource-document'}, JSON.stringify(d, null, 2))));
      doc.querySelector('h2').focus({preventScroll: true});
      if (!inView(doc)) doc.scrollIntoView({block: 'start'});
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

  /** The failing places as sentences at the top of the page; the raw rows stay at the bottom, folded. */
  function paintFailures(rows, accountErrors) {
    const sentences = failureSentences(rows, accountErrors);
    syncAlert.hidden = !sentences.length;
    replace(syncAlert, sentences.length ? [
      h('p', {}, h('strong', {}, sentences.length === 1 ? 'The last sync failed in one place; its data may be out of date.'
        : `The last sync failed in ${sentences.length} places; their data may be out of date.`)),
      h('ul', {}, sentences.map(s => h('li', {'data-account': s.account, 'data-region': s.region || ''}, s.text))),
      h('p', {class: 'hint'}, 'Plans on resources there carry a warning and need an acknowledgement. Fix the cause, then Sync now.'),
    ] : []);
  }

  async function loadStatus() {
    try {
      const status = await api('/v1/status');
      scopes = new Map(status.scopes.map(s => [s.scope, s]));
      const failed = status.scopes.filter(isFailing);
      // Accounts that could not be reached at all have no scope rows: the app's last scheduled sync
      // (or this page's own Sync now) says which.
      const scheduled = (status.schedule && status.schedule.last && status.schedule.last.errors) || [];
      paintFailures(status.scopes, manualErrors ?? scheduled);
      paintSchedule(status.schedule);
      const newest = status.scopes.map(s => s.last_success).filter(Boolean).sort().pop();
      const oldest = status.scopes.map(s => s.last_success).filter(Boolean).sort()[0];
      replace(statusBox, h('h2', {id: 'sync-title'}, 'Sync status'),
        h('p', {class: failed.length ? 'error' : 'muted'}, `${status.documents} resources in the index from ${status.scopes.length} scopes` +
          ` (account × region × service); ${failed.length ? `${failed.length} failed their last sync` : 'none failing'}. `,
        oldest ? ['Oldest data ', ageLabel(oldest), ', newest ', ageLabel(newest), '.'] : null),
        status.scopes.length ? h('details', {}, h('summary', {}, `Every scope (${status.scopes.length})`),
          h('div', {class: 'table-wrap'}, h('table', {class: 'grid'},
            h('thead', {}, h('tr', {}, ['Account', 'Region', 'Service', 'Resources', 'Last success', 'Last error']
              .map(t => h('th', {scope: 'col'}, t)))),
            h('tbody', {}, status.scopes.map(s => h('tr', {class: isFailing(s) ? 'has-error' : ''},
              h('td', {}, s.account_name), h('td', {}, s.region), h('td', {}, s.service), h('td', {}, String(s.count)),
              h('td', {}, ageLabel(s.last_success)),
              h('td', {class: s.last_error ? 'error' : 'muted'}, s.last_error
                ? [errorInWords(s.last_error), ' (', ageLabel(s.last_error_at, 'failed'), ')'] : '—')))))))
          : h('p', {}, 'Never synced: press Sync now.'));
      return status;
    } catch (err) {
      replace(statusBox, h('h2', {id: 'sync-title'}, 'Sync status'), errorBox(err));
      return null;
    }
  }

  /** The app's own syncs (its scheduler): one running now, or when the next one is due. */
  function paintSchedule(schedule) {
    if (syncButton.disabled || !schedule) return;  // this page's own Sync now is reporting progress
    if (schedule.running) {
      syncProgress.textContent = `A scheduled ${schedule.running.kind} sync is running (started ${ageWords(schedule.running.started_at)}).`;
    } else if (schedule.next && schedule.next.at) {
      syncProgress.textContent = `Next ${schedule.next.kind} sync at ${parseTime(schedule.next.at).toLocaleTimeString()}.`;
    }
  }

  /** Sync now, with progress: the scopes read so far (from /v1/status while the sync runs). */
  async function syncNow() {
    syncButton.disabled = true;
    syncButton.textContent = 'Syncing…';
    const started = Date.now() - 1000;
    const total = scopes.size;
    let polling = true;
    const poll = async () => {
      while (polling) {
        await new Promise(resolve => setTimeout(resolve, SYNC_POLL_MS));
        if (!polling) break;
        try {
          const status = await api('/v1/status');
          const touched = status.scopes.filter(s => s.last_attempt && parseTime(s.last_attempt) >= started);
          const failing = touched.filter(isFailing).length;
          const seconds = Math.round((Date.now() - started) / 1000);
          if (polling) {
            syncProgress.textContent = `${touched.length}${total ? ` of ${total}` : ''} scopes read` +
              `${failing ? `, ${failing} failed` : ''} · ${seconds} s` +
              (!touched.length && seconds >= SLOW_START_S ? ' · no answer from AWS yet: it may be unreachable '
                + '(each call is retried several times before a scope is given up)' : '');
          }
        } catch { /* the final answer still comes */ }
      }
    };
    poll();
    try {
      const report = await api('/v1/sync', {method: 'POST', body: {}});
      polling = false;  // before the final line: a progress answer still in flight must not overwrite it
      manualErrors = report.errors || [];
      const failed = report.errors.length;
      const line = `Sync done in ${Math.round(report.duration_s)} s: ${report.added} added, ${report.updated} updated, ` +
        `${report.removed} removed` + (failed ? `; ${failed} scope${failed === 1 ? '' : 's'} failed (see the top of the page)` : '');
      toast(line);
      syncProgress.textContent = line;
      await reload();
    } catch (err) {
      polling = false;
      syncProgress.textContent = '';
      replace(syncAlert, errorBox(err, 'Sync failed'));
      syncAlert.hidden = false;
    } finally {
      polling = false;
      syncButton.disabled = false;
      syncButton.textContent = 'Sync now';
    }
  }

  async function reload() {
    const asked = shown;
    try {
      all = await api('/v1/explorer?limit=1');
      paintFilters(all.facets);
      await loadStatus();  // first: the rows' ages come from it
      if (shown === asked) await list();  // unless the operator searched or picked meanwhile
      else paintTree();
    } catch (err) {
      replace(results, errorBox(err));
    }
  }

  searchInput.focus();  // before loading: focus must not jump once the operator has moved on
  await reload();
  return null;
}
