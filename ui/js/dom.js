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

export function formatTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
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
