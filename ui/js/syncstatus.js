// Sync failures in sentences: one per failing account and region, saying what went wrong in words and
// how old that place's data now is. The raw per-scope rows stay in the explorer's "Every scope" table.

import {ageWords, parseTime} from './dom.js';

/** A botocore/AWS error ("EndpointConnectionError: Could not connect…") as words an operator can act on. */
export function errorInWords(raw) {
  const text = String(raw || '');
  const rules = [
    [/EndpointConnectionError|ConnectTimeout|ConnectionClosed|ReadTimeout|Could not connect/i,
      'AWS could not be reached (no network connection to its endpoint)'],
    [/ProfileNotFound/i, 'the profile named in config.yaml is not in your AWS config (check `cloudops accounts`)'],
    [/NoCredentials|Unable to locate credentials/i, 'no AWS credentials were found for this account'],
    [/ExpiredToken|InvalidClientTokenId|UnrecognizedClient|SignatureDoesNotMatch|security token/i,
      'its credentials were refused or have expired: sign in again (e.g. aws sso login)'],
    [/AccessDenied|UnauthorizedOperation|not authorized/i,
      'access was denied: the sync role lacks a read permission (docs/IAM.md lists them)'],
    [/Throttl|Rate exceeded|TooManyRequests/i, 'AWS throttled the sync; it will be retried'],
  ];
  for (const [pattern, words] of rules) if (pattern.test(text)) return words;
  const short = text.length > 160 ? `${text.slice(0, 157)}…` : text;
  return short || 'an unknown error';
}

/** A scope whose last attempt failed after (or without) its last success. */
export function isFailing(scope) {
  if (!scope.last_error) return false;
  if (!scope.last_success) return true;
  return !scope.last_error_at || parseTime(scope.last_error_at) >= parseTime(scope.last_success);
}

/** One sentence per failing account and region, from GET /v1/status's scopes (and, when given, a
 * sync report's account-level errors such as a missing profile, which have no scope rows). */
export function failureSentences(scopes, reportErrors = []) {
  const groups = new Map();
  for (const s of scopes.filter(isFailing)) {
    const key = `${s.account_name}\u0000${s.region}`;
    const g = groups.get(key) || {account: s.account_name, region: s.region, services: [], errors: new Map(), oldest: undefined};
    g.services.push(s.service);
    const words = errorInWords(s.last_error);
    g.errors.set(words, (g.errors.get(words) || 0) + 1);
    if (!s.last_success) g.oldest = null;
    else if (g.oldest !== null && (!g.oldest || parseTime(s.last_success) < parseTime(g.oldest))) g.oldest = s.last_success;
    groups.set(key, g);
  }
  const all = new Map();
  for (const s of scopes) {
    const key = `${s.account_name}\u0000${s.region}`;
    all.set(key, (all.get(key) || 0) + 1);
  }
  const sentences = [];
  for (const [key, g] of [...groups.entries()].sort()) {
    const why = [...g.errors.entries()].sort((a, b) => b[1] - a[1])[0][0];
    const which = g.services.length === all.get(key) ? 'every service' : g.services.sort().join(', ');
    const age = g.oldest === null ? 'some of it was never synced' : `its data is from ${ageWords(g.oldest)}`;
    const where = g.region === 'global' ? `${g.account} (global services)` : `${g.account} in ${g.region}`;
    sentences.push({account: g.account, region: g.region,
      text: `${where}: the last sync failed for ${which}: ${why}; ${age}.`});
  }
  for (const e of reportErrors.filter(e => !e.region)) {  // the account itself could not be reached
    sentences.push({account: e.account, region: null,
      text: `${e.account}: the sync could not start for this account: ${errorInWords(e.error)}.`});
  }
  return sentences;
}
