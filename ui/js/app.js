// Bootstrap and hash router: #ask, #plan/<request_id>, #explorer, #audit, #settings.
// The token is obtained first (pywebview bridge, this tab's session, or the paste form).

import {api, bridgeToken, forgetToken, setToken, storedToken} from './api.js';
import {clear, refreshAges} from './dom.js';
import * as ask from './views/ask.js';
import * as approval from './views/approval.js';
import * as explorer from './views/explorer.js';
import * as audit from './views/audit.js';
import * as settings from './views/settings.js';

const VIEWS = {ask, explorer, audit, settings};
const BRIDGE_WAIT_MS = 1500;
const HEALTH_EVERY_MS = 5000;  // the header must not say "connected" for long after the app is gone
const AGES_EVERY_MS = 30000;
let cleanup = null;
let started = false;

function parseRoute() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  const plan = hash.match(/^plan\/([A-Za-z0-9_.:-]{1,128})$/);
  if (plan) return {name: 'plan', params: {requestId: plan[1]}};
  return {name: VIEWS[hash] ? hash : 'ask', params: {}};
}

function markNav(name) {
  for (const link of document.querySelectorAll('nav a[data-route]')) {
    if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function route() {
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
  const {name, params} = parseRoute();
  const view = document.getElementById('view');
  clear(view);
  markNav(name === 'plan' ? '' : name);
  document.title = `CloudOps · ${name === 'plan' ? 'Approve plan' : name[0].toUpperCase() + name.slice(1)}`;
  const module = name === 'plan' ? approval : VIEWS[name];
  cleanup = await module.render(view, params);
}

/** The header tells the truth about the connection: it asks /v1/health now and every few seconds. */
async function checkConnection() {
  const conn = document.getElementById('conn');
  try {
    const health = await api('/v1/health');
    conn.textContent = `connected · v${health.version}`;
    conn.className = 'conn ok';
    conn.title = '';
    return true;
  } catch (err) {
    conn.textContent = err.status === 401 ? 'token refused' : 'disconnected';
    conn.title = err.status === 401 ? 'The app restarted with a new token.'
      : 'The local endpoint is not answering: is CloudOps still running? Nothing you press here can reach AWS.';
    conn.className = 'conn bad';
    return false;
  }
}

let healthTimer = null;
function watchConnection() {
  if (healthTimer) return;
  healthTimer = setInterval(() => { if (document.visibilityState === 'visible') checkConnection(); }, HEALTH_EVERY_MS);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') checkConnection(); });
  window.addEventListener('focus', () => checkConnection());
  setInterval(() => refreshAges(), AGES_EVERY_MS);
}

function showGate(message = '') {
  const gate = document.getElementById('token-gate');
  gate.hidden = false;
  document.getElementById('view').hidden = true;
  document.getElementById('token-error').textContent = message;
  const input = document.getElementById('token-input');
  input.value = '';
  input.focus();
}

function hideGate() {
  document.getElementById('token-gate').hidden = true;
  document.getElementById('view').hidden = false;
}

async function start() {
  hideGate();
  if (!started) {
    started = true;
    window.addEventListener('hashchange', route);
  }
  await checkConnection();
  watchConnection();
  await route();
}

async function onTokenSubmit(event) {
  event.preventDefault();
  const value = document.getElementById('token-input').value.trim();
  if (!value) return;
  setToken(value, true);
  if (await checkConnection()) {
    await start();
  } else {
    forgetToken();
    showGate('That token was refused. Copy the "token" value of endpoint.json for the running app.');
  }
}

async function boot() {
  document.getElementById('token-form').addEventListener('submit', onTokenSubmit);
  window.addEventListener('cloudops:unauthorized', async () => {
    const fresh = await bridgeToken(0);  // the desktop app restarted: ask the bridge again
    if (fresh) { setToken(fresh); await start(); return; }
    showGate('The endpoint refused the token (the app may have restarted). Paste the new one.');
  });
  document.addEventListener('keydown', event => {
    // Alt+1..4: the sections, from anywhere.
    if (event.altKey && !event.ctrlKey && !event.metaKey && /^[1-4]$/.test(event.key)) {
      location.hash = ['#ask', '#explorer', '#audit', '#settings'][Number(event.key) - 1];
      event.preventDefault();
    }
  });
  const stored = storedToken();
  if (stored) {
    setToken(stored);
    await start();
    return;
  }
  const fromBridge = await bridgeToken(BRIDGE_WAIT_MS);
  if (fromBridge) {
    setToken(fromBridge);
    await start();
    return;
  }
  document.getElementById('loading')?.remove();
  showGate();
}

boot();

