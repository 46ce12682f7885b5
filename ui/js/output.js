// A call's response as a person reads it: the records it describes as a table (several) or a list of
// facts (one), every field in a collapsible tree, and the raw JSON one click away. An operator who asks
// to describe wants the description, not "Done".
//
// Everything goes in as text (dom.js never uses innerHTML): a tag value such as "<img onerror=...>"
// is shown as those characters, never parsed.

import {copyText, h, toast} from './dom.js';

const MAX_TREE_NODES = 1500;  // a listing of thousands of objects stays readable; the raw JSON has the rest
const MAX_COLUMNS = 7;
const MAX_ROWS = 200;

const isObject = v => v !== null && typeof v === 'object' && !Array.isArray(v);
const isScalar = v => v === null || ['string', 'number', 'boolean'].includes(typeof v);

/** The records a response is about: EC2's Reservations[].Instances[] flattened, a response's one list
 * (DBInstances, Functions, QueueUrls), a single object's one nested object (GetQueueAttributes'
 * Attributes), else the response itself as one record. */
export function findRecords(value, depth = 0) {
  if (depth > 4) return [value];
  if (Array.isArray(value)) {
    if (value.length && value.every(isObject)) {
      const nested = value.map(v => Object.entries(v).filter(([, x]) => Array.isArray(x) && x.length && x.every(isObject)));
      const key = nested[0].length === 1 ? nested[0][0][0] : null;
      if (key && nested.every(n => n.length === 1 && n[0][0] === key)) return value.flatMap(v => v[key]);
    }
    return value;
  }
  if (isObject(value)) {
    const containers = Object.entries(value).filter(([, v]) => Array.isArray(v) || isObject(v));
    const scalars = Object.entries(value).filter(([k, v]) => isScalar(v) && !/^(NextToken|Marker|NextMarker|IsTruncated)$/.test(k));
    if (containers.length === 1 && scalars.length === 0) return findRecords(containers[0][1], depth + 1);
  }
  return [value];
}

/** A record's Name: its Name tag (EC2 style Tags: [{Key, Value}], or a tag map), else nothing. */
function nameTag(record) {
  const tags = record.Tags || record.TagList || record.tags;
  if (Array.isArray(tags)) return (tags.find(t => t && (t.Key === 'Name' || t.key === 'Name')) || {}).Value;
  if (isObject(tags)) return tags.Name;
  return undefined;
}

function tagsText(tags) {
  if (Array.isArray(tags)) return tags.map(t => `${t.Key ?? t.key}=${t.Value ?? t.value}`).join(', ');
  if (isObject(tags)) return Object.entries(tags).map(([k, v]) => `${k}=${v}`).join(', ');
  return String(tags);
}

/** A record's flat fields: scalars as they are, small objects of scalars one level down (State.Name). */
function flatFields(record) {
  const out = new Map();
  const name = nameTag(record);
  if (name !== undefined) out.set('Name', name);
  for (const [key, value] of Object.entries(record)) {
    if (isScalar(value)) out.set(key, value);
    else if (/^(Tags|TagList|tags)$/.test(key)) out.set('Tags', tagsText(value));
    else if (isObject(value) && Object.keys(value).length <= 4 && Object.values(value).every(isScalar)) {
      for (const [k, v] of Object.entries(value)) if (v !== '' && v !== null) out.set(`${key}.${k}`, v);
    }
  }
  return out;
}

/** Identity first (names, ids), then state, then what kind of thing it is; ARNs and times last. */
function rank(key) {
  if (key === 'Name') return 0;
  const secondary = /(Group|Subnet|Zone|Dns|Device|Parameter|Option|Key|Certificate|Kms|Snapshot|Resource|Source|Vpc|Image|Owner|Hosted|Reservation|Client|Ami|Network|Attachment)/;
  if (/(Identifier|Name)$/.test(key) && !secondary.test(key)) return 1;
  if (/Id$/.test(key) && !secondary.test(key)) return 2;
  if (/^(State|Status|DBInstanceStatus|State\.Name|Status\.Name|StateName)$/.test(key) || /Status$/.test(key)) return 3;
  if (/(Type|Class|Engine|EngineVersion|Runtime|Size|AllocatedStorage|MultiAZ)$/.test(key)) return 4;
  if (/(Arn|ARN|Time|Date|Url|URL)$/.test(key)) return 8;
  if (key === 'Tags') return 9;
  return 6;
}

function ordered(keys) {
  return [...keys].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function text(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

/** Several records: a table of the columns most of them have, best first. */
function recordTable(records) {
  const fields = records.slice(0, MAX_ROWS).map(r => (isObject(r) ? flatFields(r) : new Map([['Value', r]])));
  const counts = new Map();
  for (const f of fields) for (const k of f.keys()) counts.set(k, (counts.get(k) || 0) + 1);
  const common = [...counts.keys()].filter(k => counts.get(k) >= Math.max(1, fields.length / 2) && k !== 'Tags');
  const columns = ordered(common).slice(0, MAX_COLUMNS);
  return h('div', {class: 'table-wrap'}, h('table', {class: 'grid output-table'},
    h('thead', {}, h('tr', {}, columns.map(c => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, fields.map(f => h('tr', {}, columns.map(c => h('td', {}, text(f.get(c)))))))),
  records.length > MAX_ROWS ? h('p', {class: 'hint'}, `First ${MAX_ROWS} of ${records.length}; every one is in the raw JSON.`) : null);
}

const FIRST_FACTS = 12;

/** One record: its fields as a list of facts, the first dozen (names, state, kind) shown, the rest folded. */
function recordFacts(record) {
  const fields = isObject(record) ? flatFields(record) : new Map([['Value', record]]);
  const keys = ordered(fields.keys());
  const facts = list => h('dl', {class: 'facts output-facts'}, list.map(k => [h('dt', {}, k), h('dd', {}, text(fields.get(k)))]));
  if (keys.length <= FIRST_FACTS + 3) return facts(keys);
  return [facts(keys.slice(0, FIRST_FACTS)),
    h('details', {}, h('summary', {}, `${keys.length - FIRST_FACTS} more fields`), facts(keys.slice(FIRST_FACTS)))];
}

/** Every field, as nested <details> (the first level open); at most MAX_TREE_NODES nodes. */
export function jsonTree(value, label = 'response') {
  let budget = MAX_TREE_NODES;
  const node = (key, v, depth) => {
    budget -= 1;
    if (budget < 0) return null;
    if (Array.isArray(v) || isObject(v)) {
      const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
      const summary = Array.isArray(v) ? `${key} [${v.length}]` : `${key} {${entries.length}}`;
      if (!entries.length) return h('li', {}, h('span', {class: 'k'}, key), ': ', h('span', {class: 'v muted'}, Array.isArray(v) ? '[]' : '{}'));
      const children = [];
      for (const [k, x] of entries) {
        const child = node(k, x, depth + 1);
        if (child === null) { children.push(h('li', {class: 'muted'}, '… more in the raw JSON')); break; }
        children.push(child);
      }
      return h('li', {}, h('details', {open: depth < 1}, h('summary', {}, summary), h('ul', {}, children)));
    }
    return h('li', {}, h('span', {class: 'k'}, key), ': ', h('span', {class: `v v-${v === null ? 'null' : typeof v}`}, text(v)));
  };
  return h('ul', {class: 'json-tree'}, node(label, value, 0));
}

function rawJson(output) {
  const raw = typeof output === 'string' ? output : JSON.stringify(output, null, 2);
  const copy = h('button', {type: 'button', class: 'small', onclick: async () =>
    toast(await copyText(raw) ? 'JSON copied' : 'Copy failed: select the text')}, 'Copy JSON');
  return h('details', {class: 'raw-json'}, h('summary', {}, 'Raw JSON'),
    h('div', {class: 'raw-actions'}, copy),
    h('pre', {class: 'json', tabindex: '0', 'data-testid': 'raw-json'}, raw));
}

/** A step's response: table or facts, the tree, the raw JSON. `open`: read steps start open; a change's
 * response (the new state it reports) starts folded. */
export function renderOutput(outcome, {open = true} = {}) {
  const output = outcome.output;
  const body = [];
  if (outcome.output_truncated || (isObject(output) && typeof output.truncated_json === 'string' && Object.keys(output).length === 1)) {
    body.push(h('p', {class: 'hint'}, 'The response was too long to show in full (over 200,000 characters): its start is below.'),
      h('pre', {class: 'json', tabindex: '0', 'data-testid': 'raw-json'}, String(output.truncated_json ?? JSON.stringify(output))));
  } else {
    const records = findRecords(output);
    const empty = records.length === 0 || (records.length === 1 && isObject(records[0]) && !Object.keys(records[0]).length);
    if (empty) body.push(h('p', {class: 'muted'}, 'The response is empty: AWS returned nothing for this call.'));
    else if (records.length === 1) body.push(recordFacts(records[0]));
    else body.push(recordTable(records));
    if (!empty) body.push(h('details', {class: 'tree-view'}, h('summary', {}, 'Every field'), jsonTree(output, outcome.operation)));
    body.push(rawJson(output));
  }
  const count = Array.isArray(findRecords(output)) ? findRecords(output).length : 1;
  const title = `${outcome.operation}: ${outcome.mutating ? 'what AWS answered' : `${count} item${count === 1 ? '' : 's'}`}`;
  return h('details', {class: 'read-result', open, 'data-testid': 'read-result', dataset: {step: outcome.step_id}},
    h('summary', {}, title), body);
}

/** Several reads of one operation (a listing: 'list the databases in production' describes each one):
 * their records in one table, above the steps (whose own responses stay, folded). */
export function renderCombined(outcomes) {
  const records = outcomes.flatMap(o => (o.output_truncated ? [] : findRecords(o.output)));
  const operation = outcomes[0].operation;
  return h('section', {class: 'read-result combined', 'data-testid': 'combined-result'},
    h('h3', {}, `${operation}: ${records.length} item${records.length === 1 ? '' : 's'} from ${outcomes.length} calls`),
    records.length ? recordTable(records) : h('p', {class: 'muted'}, 'The responses are empty.'));
}
