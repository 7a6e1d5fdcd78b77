// pcnode dashboard: plain JavaScript, no libraries, nothing from the network.
// It calls the node's /api/v1 routes with the session cookie and, on every
// request that changes something, the session's CSRF token. Data from the
// node is put into the page only as text (textContent), never as HTML.
'use strict';

const REFRESH_MS = 2000;
let csrf = '';
let timer = null;
const shown = {}; // section -> JSON last rendered, to skip needless redraws

const $ = (id) => document.getElementById(id);

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

class APIError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

// api calls the node. Streaming answers (NDJSON) resolve to their last line.
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = (await r.text()).trim();
  let v = null;
  if (text) {
    const lines = text.split('\n');
    try { v = JSON.parse(lines[lines.length - 1]); } catch (e) { v = { error: text }; }
  }
  if (r.status === 401 && path !== '/api/v1/session') {
    signedOut();
  }
  if (!r.ok) throw new APIError(r.status, (v && v.error) || r.statusText);
  if (v && !Array.isArray(v) && v.error) throw new APIError(v.code || 500, v.error);
  return v;
}

function say(msg, isError) {
  const m = $('message');
  m.textContent = msg;
  m.className = isError ? 'message error' : 'message';
}

function ago(t) {
  if (!t) return 'never';
  const s = Math.round((Date.now() - Date.parse(t)) / 1000);
  if (s < 5) return 'just now';
  if (s < 120) return s + 's ago';
  if (s < 7200) return Math.round(s / 60) + ' min ago';
  if (s < 172800) return Math.round(s / 3600) + ' h ago';
  return new Date(t).toLocaleString();
}

function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

function qrURL(text) { return '/api/v1/qr?text=' + encodeURIComponent(text); }

async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    // No clipboard permission: select the text so Ctrl+C copies it.
    if (input) { input.focus(); input.select(); }
    document.execCommand && document.execCommand('copy');
  }
}

// --- sign-in ---

function signedOut() {
  csrf = '';
  if (timer) { clearInterval(timer); timer = null; }
  for (const k of Object.keys(shown)) delete shown[k];
  $('app').hidden = true;
  $('signout').hidden = true;
  $('whoami').textContent = '';
  $('signin-view').hidden = false;
}

function signedIn(info) {
  csrf = info.csrf;
  $('signin-view').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  refresh();
  if (!timer) timer = setInterval(refresh, REFRESH_MS);
}

async function signIn(ev) {
  ev.preventDefault();
  $('signin-error').textContent = '';
  try {
    const info = await api('POST', '/api/v1/session', { token: $('token').value.trim() });
    $('token').value = '';
    signedIn(info);
  } catch (e) {
    $('signin-error').textContent = e.message;
  }
}

async function signOut() {
  try { await api('DELETE', '/api/v1/session'); } catch (e) { /* signed out anyway */ }
  signedOut();
}

// --- rendering ---

function changed(key, v) {
  const j = JSON.stringify(v);
  if (shown[key] === j) return false;
  shown[key] = j;
  return true;
}

function renderStatus(st) {
  if (!st || !changed('status', st)) return;
  $('whoami').textContent = (st.online ? 'online' : 'offline') + ' · ' + st.id.slice(0, 16) + '…';
  const dl = $('status');
  dl.replaceChildren();
  const rows = [
    ['Peer ID', st.id], ['Version', st.version], ['Online', st.online ? 'yes' : 'no'],
    ['Connected peers', st.peers], ['Cloud', st.cloud || 'none'], ['Home', st.home],
    ['API', st.api], ['DNS', st.dns || 'off'], ['Addresses', (st.addrs || []).join('\n')],
  ];
  for (const [k, v] of rows) dl.append(el('dt', {}, k), el('dd', {}, v));
}

function renderDevices(ds) {
  if (!changed('devices', ds)) return;
  const tb = $('devices');
  tb.replaceChildren();
  if (!ds.length) tb.append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'This node belongs to no cloud yet.')));
  for (const d of ds) {
    let path = d.path || '—';
    if (d.path === 'relayed' && d.relay) path += ' via ' + d.relay.slice(0, 12) + '…';
    if (d.why_not_direct) path += ' (' + d.why_not_direct + ')';
    const online = d.self ? 'this device' : d.revoked ? 'revoked' : d.connected ? 'online' : 'offline';
    tb.append(el('tr', { dataset: { device: d.name }, class: 'device' },
      el('td', {}, d.name, d.admin ? ' (admin)' : ''),
      el('td', {}, d.role),
      el('td', { class: d.connected || d.self ? 'online' : 'offline' }, online),
      el('td', {}, (d.sources || []).join(', ') || '—'),
      el('td', { class: 'path' }, d.self ? '—' : path),
      el('td', {}, d.latency_ms ? d.latency_ms.toFixed(1) + ' ms' : '—'),
      el('td', {}, d.self ? '—' : ago(d.last_seen))));
  }
}

function folderState(f) {
  if (f.state === 'idle' && f.need_files === 0) return 'in sync';
  if (f.state === 'held') return 'held: ' + (f.held_deletes + f.held_local_deletes) + ' deletes wait';
  if (f.state === 'error') return 'error: ' + f.error;
  return f.state;
}

function renderFolders(fs) {
  if (!changed('folders', fs)) return;
  const tb = $('folders');
  tb.replaceChildren();
  if (!fs.length) tb.append(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No folders. Add one with pcnode folder add <dir>.')));
  const sel = $('versions-folder');
  const keep = sel.value;
  sel.replaceChildren();
  for (const f of fs) {
    const total = f.bytes + f.need_bytes;
    const pct = total > 0 ? Math.floor(100 * f.bytes / total) : 100;
    const confirm = f.state === 'held'
      ? el('button', { type: 'button', class: 'confirm', onclick: () => act('folders/confirm', { id: f.id }, 'Deletes confirmed') }, 'Confirm deletes')
      : null;
    tb.append(el('tr', { dataset: { folder: f.id }, class: 'folder' },
      el('td', {}, f.id),
      el('td', {}, f.path, f.receive_only ? ' (receive only)' : ''),
      el('td', { class: 'state state-' + f.state }, folderState(f)),
      el('td', {}, el('progress', { max: 100, value: pct }), ' ' + pct + '%',
        f.need_files ? ' (' + f.need_files + ' files, ' + bytes(f.need_bytes) + ' to go)' : ''),
      el('td', {}, f.files + ' files, ' + bytes(f.bytes)),
      el('td', {}, f.conflicts),
      el('td', {}, f.connected + ' of ' + f.devices + ' connected'),
      el('td', {}, confirm)));
    sel.append(el('option', { value: f.id }, f.id + ' ' + f.path));
  }
  if (keep) sel.value = keep;
}

function renderConflicts(cs) {
  if (!changed('conflicts', cs)) return;
  const tb = $('conflicts');
  tb.replaceChildren();
  if (!cs.length) tb.append(el('tr', {}, el('td', { colspan: 3, class: 'muted' }, 'No conflicts.')));
  for (const c of cs) {
    const resolve = (keep) => act('conflicts/resolve', { folder: c.folder, path: c.path, keep },
      keep === 'keep-copy' ? 'The copy replaced the original' : 'The copy was deleted');
    tb.append(el('tr', { dataset: { path: c.path }, class: 'conflict' },
      el('td', {}, c.folder),
      el('td', {}, c.path),
      el('td', {},
        el('button', { type: 'button', class: 'keep-copy', onclick: () => resolve('keep-copy') }, 'Keep this copy'), ' ',
        el('button', { type: 'button', class: 'keep-original', onclick: () => resolve('keep-original') }, 'Keep the original'))));
  }
}

function renderShares(ss) {
  if (!changed('shares', ss)) return;
  const tb = $('shares');
  tb.replaceChildren();
  if (!ss.length) tb.append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No shares.')));
  for (const s of ss) {
    const link = el('input', { readonly: '', size: 36, value: s.link, class: 'link' });
    const active = s.state === 'active';
    tb.append(el('tr', { dataset: { share: s.id, state: s.state }, class: 'share' },
      el('td', {}, s.name || s.id, s.encrypted ? ' (encrypted)' : ''),
      el('td', { class: 'share-state' }, s.state),
      el('td', {}, bytes(s.size)),
      el('td', { class: 'downloads' }, s.downloads),
      el('td', {}, s.expires ? new Date(s.expires).toLocaleString() : 'never'),
      el('td', {}, link, ' ',
        el('button', { type: 'button', class: 'copy', onclick: async () => { await copyText(s.link, link); say('Link copied: ' + s.link); } }, 'Copy link'), ' ',
        el('button', { type: 'button', class: 'qr', onclick: () => showShareQR(s) }, 'QR')),
      el('td', {}, active ? el('button', { type: 'button', class: 'revoke', onclick: (ev) => revokeShare(s, ev.currentTarget) }, 'Revoke') : null)));
  }
}

function showShareQR(s) {
  $('share-qr-id').textContent = s.name || s.id;
  $('share-qr').src = qrURL(s.link);
  $('share-qr-box').hidden = false;
}

function renderLogs(ls) {
  if (!changed('logs', ls)) return;
  const pre = $('logs');
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = ls.map((l) => new Date(l.time).toISOString().slice(11, 19) + ' ' + l.level.padEnd(5) + ' ' + l.msg + (l.attrs ? ' ' + l.attrs : '')).join('\n');
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

// load fetches one part; a part this node lacks (404) or cannot give
// offline (503) shows as empty instead of failing the page.
async function load(path, render, empty) {
  try {
    render(await api('GET', path));
  } catch (e) {
    if (e.status === 404 || e.status === 503) render(empty);
    else if (e.status !== 401) say(path + ': ' + e.message, true);
  }
}

let refreshing = false;
async function refresh() {
  if (refreshing || !csrf) return;
  refreshing = true;
  try {
    await Promise.all([
      load('/api/v1/status', renderStatus, null),
      load('/api/v1/devices', renderDevices, []),
      load('/api/v1/folders', renderFolders, []),
      load('/api/v1/conflicts', renderConflicts, []),
      load('/api/v1/shares', renderShares, []),
      load('/api/v1/logs?n=200', renderLogs, []),
    ]);
  } finally {
    refreshing = false;
  }
}

// --- actions ---

async function act(path, body, done) {
  try {
    const v = await api('POST', '/api/v1/' + path, body);
    say(done);
    refresh();
    return v;
  } catch (e) {
    say(e.message, true);
    return null;
  }
}

// revokeShare asks first: the button turns into a confirmation, and
// only a second click revokes (a modal dialog would block the page).
async function revokeShare(s, btn) {
  if (btn.dataset.armed !== '1') {
    btn.dataset.armed = '1';
    btn.textContent = 'Click again to revoke';
    return;
  }
  await act('shares/revoke', { id: s.id }, 'Share revoked: the link no longer works');
}

async function createShare(ev) {
  ev.preventDefault();
  const body = { path: $('share-path').value.trim() };
  if ($('share-expires').value.trim()) body.expires = $('share-expires').value.trim();
  if ($('share-encrypt').checked) body.encrypt = true;
  if ($('share-unlisted').checked) body.unlisted = true;
  say('Creating share…');
  const s = await act('shares', body, 'Share created');
  if (s) {
    say('Share created: ' + s.link);
    $('share-path').value = '';
    showShareQR(s);
  }
}

async function invite(ev) {
  ev.preventDefault();
  const v = await act('devices/invite', { ttl: $('invite-ttl').value, admin: $('invite-admin').checked }, 'Invite made');
  if (!v) return;
  $('invite-code').value = v.code;
  $('invite-code-inline').textContent = v.code;
  $('invite-expires').textContent = new Date(v.expires).toLocaleString();
  $('invite-qr').src = qrURL(v.code);
  $('invite-result').hidden = false;
}

async function showVersions(ev) {
  ev.preventDefault();
  const folder = $('versions-folder').value;
  const path = $('versions-path').value.trim();
  const tb = $('versions');
  tb.replaceChildren();
  try {
    const vs = await api('GET', '/api/v1/folders/versions?' + new URLSearchParams({ folder, path }));
    if (!vs.length) tb.append(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'No old versions of ' + path + '.')));
    for (const v of vs) {
      tb.append(el('tr', { class: 'version' },
        el('td', {}, v.path),
        el('td', {}, new Date(v.time).toLocaleString()),
        el('td', {}, bytes(v.size)),
        el('td', {}, el('button', { type: 'button', class: 'restore', onclick: () => act('folders/restore', { folder: v.folder, path: v.path, at: v.time }, 'Restored ' + v.path + ' as of ' + v.time) }, 'Restore'))));
    }
  } catch (e) {
    say(e.message, true);
  }
}

async function start() {
  $('signin').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('share-form').addEventListener('submit', createShare);
  $('invite-form').addEventListener('submit', invite);
  $('versions-form').addEventListener('submit', showVersions);
  $('invite-copy').addEventListener('click', async () => { await copyText($('invite-code').value, $('invite-code')); say('Invite code copied'); });
  try {
    signedIn(await api('GET', '/api/v1/session'));
  } catch (e) {
    signedOut();
  }
}

start();
