// Settings: the agent server URL, offline mode and sync schedules (written to config.yaml by the
// endpoint, validated there too: a bad value comes back as a 422 naming the field). Errors are said in
// words next to the field, checked here before sending and mapped from the endpoint's answer (never a
// raw pydantic pattern). Accounts are listed read-only: they are added with `cloudops accounts add`,
// which keeps keys in the OS keyring.

import {api} from '../api.js';
import {errorBox, h, replace} from '../dom.js';

const FIELDS = {server_url: 'server-url', offline: 'offline', 'schedules.full_every_s': 'full-every',
  'schedules.incremental_every_s': 'incremental-every'};
const MIN_FULL_S = 60;
const MIN_INCREMENTAL_S = 30;

/** What each field needs, in a sentence (shown when the value is refused, here or by the endpoint). */
const RULES = {
  server_url: 'The server URL must start with http:// or https:// and name a host (e.g. https://agent.example.com); leave it empty to plan with the local agent stack.',
  offline: 'Offline mode is on or off.',
  'schedules.full_every_s': `A full sync needs a whole number of seconds, at least ${MIN_FULL_S} (21600 is every 6 hours).`,
  'schedules.incremental_every_s': `An incremental sync needs a whole number of seconds, at least ${MIN_INCREMENTAL_S} (900 is every 15 minutes).`,
};

/** The problems this page can see before sending, as {field, message}. */
function check(body) {
  const problems = [];
  if (body.server_url && !/^https?:\/\/[^\s/?#]+(\/\S*)?$/.test(body.server_url)) problems.push('server_url');
  const whole = (v, min) => Number.isInteger(v) && v >= min;
  if (!whole(body.schedules.full_every_s, MIN_FULL_S)) problems.push('schedules.full_every_s');
  if (!whole(body.schedules.incremental_every_s, MIN_INCREMENTAL_S)) problems.push('schedules.incremental_every_s');
  return problems.map(field => ({field, message: RULES[field]}));
}

export async function render(view) {
  let settings;
  try {
    settings = await api('/v1/settings');
  } catch (err) {
    replace(view, h('h1', {}, 'Settings'), errorBox(err));
    return null;
  }
  const fieldError = id => h('p', {id: `${id}-error`, class: 'error field-error', 'aria-live': 'polite'});
  const serverUrl = h('input', {id: 'server-url', type: 'url', value: settings.server_url || '', placeholder: 'https://agent.example.com',
    autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'server-url-error server-url-help'});
  const offline = h('input', {id: 'offline', type: 'checkbox', checked: settings.offline, 'aria-describedby': 'offline-help offline-error'});
  const full = h('input', {id: 'full-every', type: 'number', min: String(MIN_FULL_S), step: '60', value: String(settings.schedules.full_every_s),
    'aria-describedby': 'full-every-error'});
  const incremental = h('input', {id: 'incremental-every', type: 'number', min: String(MIN_INCREMENTAL_S), step: '30',
    value: String(settings.schedules.incremental_every_s), 'aria-describedby': 'incremental-every-error'});
  const status = h('div', {class: 'form-status', role: 'status', 'aria-live': 'polite'});

  const form = h('form', {class: 'settings card', novalidate: true, onsubmit: e => { e.preventDefault(); save(); }},
    h('fieldset', {}, h('legend', {}, 'Agent server'),
      h('div', {class: 'field'}, h('label', {for: 'server-url'}, 'Server URL'), serverUrl,
        h('p', {id: 'server-url-help', class: 'hint'}, 'Empty: plans are made by the local agent stack.'), fieldError('server-url')),
      h('div', {class: 'field check'}, offline, h('label', {for: 'offline'}, 'Offline mode'),
        h('p', {id: 'offline-help', class: 'hint'}, 'Never contact the server; plan with the local stack only.'), fieldError('offline'))),
    h('fieldset', {}, h('legend', {}, 'Sync schedules (seconds)'),
      h('div', {class: 'field'}, h('label', {for: 'full-every'}, 'Full sync every'), full, fieldError('full-every')),
      h('div', {class: 'field'}, h('label', {for: 'incremental-every'}, 'Incremental sync every'), incremental,
        fieldError('incremental-every'))),
    h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Save')),
    status);

  const accounts = h('section', {class: 'card', 'aria-labelledby': 'accounts-title'},
    h('h2', {id: 'accounts-title'}, 'Accounts'),
    h('p', {class: 'hint'}, settings.accounts_configured ? 'From config.yaml. ' : 'None configured: the default profile and region are used. ',
      'Add or remove with ', h('code', {}, 'cloudops accounts add NAME --profile P --region R'), '.'),
    h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, ['Name', 'Profile', 'Regions', 'Account id'].map(t => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, settings.accounts.map(a => h('tr', {},
        h('td', {}, a.name), h('td', {}, a.profile || '(default chain)'), h('td', {}, a.regions.join(', ')),
        h('td', {}, a.account_id || '—'))))),
    h('p', {class: 'hint'}, `Config file: ${settings.config_path}. Approvals expire after ${settings.approval_ttl_s} s.`));

  replace(view, h('section', {class: 'settings-view'}, h('h1', {}, 'Settings'), form, accounts));

  function clearErrors() {
    for (const id of Object.values(FIELDS)) {
      document.getElementById(`${id}-error`).textContent = '';
      document.getElementById(id).removeAttribute('aria-invalid');
    }
  }

  async function save() {
    clearErrors();
    replace(status);
    const body = {server_url: serverUrl.value.trim(), offline: offline.checked,
      schedules: {...settings.schedules, full_every_s: Number(full.value), incremental_every_s: Number(incremental.value)}};
    const problems = check(body);
    if (problems.length) { refused(problems); return; }
    try {
      const saved = await api('/v1/settings', {method: 'PUT', body});
      serverUrl.value = saved.server_url || '';
      offline.checked = saved.offline;
      replace(status, h('p', {class: 'good'}, 'Saved to config.yaml.'));
    } catch (err) {
      // The endpoint's words for a field are replaced by this page's sentence for it; anything else
      // (the file could not be written, the app is gone) is said as the endpoint says it.
      const known = (err.details || []).filter(d => FIELDS[d.field] || FIELDS[d.field.replace(/\.[^.]*$/, '')]);
      if (known.length) refused(known.map(d => ({field: FIELDS[d.field] ? d.field : d.field.replace(/\.[^.]*$/, '')})));
      else replace(status, h('div', {class: 'error-box', role: 'alert'}, h('strong', {}, 'Not saved: '),
        err.status === 0 ? 'the app is not answering (is CloudOps still running?).' : `${err.message}.`));
    }
  }

  /** Each refused field marked, its sentence beside it, one line above the Save button. */
  function refused(problems) {
    let first = null;
    for (const d of problems) {
      const id = FIELDS[d.field];
      if (!id) continue;
      document.getElementById(`${id}-error`).textContent = RULES[d.field];
      document.getElementById(id).setAttribute('aria-invalid', 'true');
      first = first || document.getElementById(id);
    }
    replace(status, h('div', {class: 'error-box', role: 'alert'}, h('strong', {}, 'Not saved: '),
      problems.length === 1 ? 'one setting needs a change (marked above).' : `${problems.length} settings need a change (marked above).`));
    (first || serverUrl).focus();
  }

  serverUrl.focus();
  return null;
}
