// Tiny DOM helpers. Text always goes in as text nodes (never innerHTML), so nothing from the estate
// or a plan can become markup.

/** Create an element: h('button', {class: 'primary', onclick: fn}, 'Run'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value') el.value = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  return append(clear(el), children);
}

let toastTimer = null;
/** A short status message for screen readers and eyes. */
export function toast(message) {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = message;
  el.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('shown'), 2500);
}

/** A time from the endpoint; one without a zone is UTC (SQLite keeps no zone), never local time. */
export function parseTime(iso) {
  const text = String(iso || '');
  return new Date(/T.*(Z|[+-]\d\d:?\d\d)$/.test(text) || !text.includes('T') ? text : `${text}Z`);
}

export function formatTime(iso) {
  if (!iso) return '—';
  const d = parseTime(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** How long ago, in the words the tray uses: 'just now', '4 min ago', '3 h ago', '2 days ago'. */
export function ageWords(iso, now = Date.now()) {
  const at = parseTime(iso).getTime();
  if (!iso || Number.isNaN(at)) return null;
  const seconds = Math.max(0, (now - at) / 1000);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 2 * 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} days ago`;
}

/** 'synced 4 min ago' as a <time> element (the exact time in its tooltip), kept current by the ticker
 * below; 'never synced' when there is no time. `prefix` replaces 'synced'. */
export function ageLabel(iso, prefix = 'synced') {
  if (!iso || ageWords(iso) === null) return h('span', {class: 'age never', 'data-testid': 'age'}, `never ${prefix}`);
  const el = h('time', {class: 'age', datetime: iso, title: formatTime(iso), 'data-testid': 'age',
    dataset: {prefix}}, `${prefix} ${ageWords(iso)}`);
  return el;
}

/** Every age on the page is rewritten twice a minute, so a view left open does not lie about its data. */
export function refreshAges(root = document) {
  for (const el of root.querySelectorAll('time.age[datetime]')) {
    el.textContent = `${el.dataset.prefix || 'synced'} ${ageWords(el.getAttribute('datetime'))}`;
  }
}

/** An error box: role=alert so it is announced; the message is the endpoint's own words. */
export function errorBox(err, prefix = '') {
  const details = (err && err.details) || [];
  return h('div', {class: 'error-box', role: 'alert'},
    h('strong', {}, prefix ? `${prefix}: ` : ''), err && err.message ? err.message : String(err),
    details.length ? h('ul', {}, details.map(d => h('li', {}, `${d.field}: ${d.message}`))) : null);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Fallback for contexts without the async clipboard: a hidden textarea and execCommand.
    const area = h('textarea', {class: 'offscreen', readonly: true}, text);
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    area.remove();
    return ok;
  }
}
