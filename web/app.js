// Switchboard web client: a small demonstration and debugging aid, no framework.
//
// Data flow (docs/web.md):
//   REST  /api/v1/auth/*           sign up, log in, token refresh
//   REST  /api/v1/sync?cursor=     catch-up at start (bootstrap without a cursor)
//   socket user:<me>               live durable events (+ catch-up from the cursor on every rejoin),
//                                  message:send / receipt pushes
//   socket conversation:<id>       typing and who is viewing (phoenix.js Presence)
//   REST  /api/v1/calls, /turn     start a call, ICE servers (STUN/TURN credentials)
//   socket call:<id>               a call's state machine and signaling (RTCPeerConnection)
// Everything durable lands in `state`, kept in localStorage with the sync
// cursor, so a reload shows the last state at once and then syncs forward.

import { Socket, Presence } from './vendor/phoenix.mjs';

const API = '/api/v1';
const PAGE = 50; // history page size
const KEEP_MESSAGES = 200; // per conversation, in localStorage
const DURABLE = ['message:new', 'message:updated', 'message:deleted', 'receipt',
  'conversation:updated', 'conversation:removed'];

// how a message without text is previewed in the chat list
const KIND_LABEL = { image: 'Photo', voice: 'Voice note', audio: 'Audio', video: 'Video', file: 'File' };

// ------------------------------------------------------------ DOM helpers --

const $ = (sel) => document.querySelector(sel);

/** h('li', {class: 'x', onclick: f}, 'text', child) -> element (text is never parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

function fmtLastSeen(iso) {
  if (!iso) return 'offline';
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return 'last seen just now';
  if (s < 3600) return `last seen ${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `last seen today at ${fmtTime(iso)}`;
  return `last seen ${new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' })}`;
}

function randomId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// --------------------------------------------------------------- session --
// {user, access_token, refresh_token, expires_at(ms)} in sessionStorage: per tab, so
// two tabs of one browser can be two people.

let session = null;

function loadSession() {
  try { session = JSON.parse(sessionStorage.getItem('sb:session')); } catch { session = null; }
  return session;
}

function saveSession(r) {
  session = {
    user: r.user || session?.user,
    access_token: r.access_token,
    refresh_token: r.refresh_token,
    expires_at: Date.now() + (Number(r.expires_in) || 900) * 1000,
  };
  sessionStorage.setItem('sb:session', JSON.stringify(session));
  scheduleRefresh();
}

let refreshing = null;
let refreshTimer = null;

/** Rotates the token pair (one at a time); a refused refresh signs out. */
function refreshTokens() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    const res = await fetch(`${API}/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: session?.refresh_token }),
    });
    if (res.status === 401 || res.status === 400 || res.status === 422) {
      signOut('Your session ended; please log in again.');
      throw new Error('session ended');
    }
    if (!res.ok) throw new Error(`refresh failed (${res.status})`);
    saveSession(await res.json());
  })().finally(() => { refreshing = null; });
  return refreshing;
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const ms = Math.max(5000, session.expires_at - Date.now() - 60000);
  refreshTimer = setTimeout(() => refreshTokens().catch(() => {}), ms);
}

/** Calls the REST API with the access token; refreshes once on 401. Throws
 * an Error with .status and .code (the API's error code) on failure. */
async function api(method, path, body, retried = false) {
  if (session && session.expires_at - Date.now() < 30000 && !retried) await refreshTokens().catch(() => {});
  const res = await fetch(API + path, {
    method,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(session ? { authorization: `Bearer ${session.access_token}` } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401 && session && !retried) {
    await refreshTokens();
    return api(method, path, body, true);
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const e = new Error(data?.error?.message || `${res.status} ${res.statusText}`);
    e.status = res.status;
    e.code = data?.error?.code;
    e.details = data?.error?.details;
    throw e;
  }
  return data;
}

/** Every page of a list endpoint ({items, next_cursor}), bounded. */
async function apiList(path) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const sep = path.includes('?') ? '&' : '?';
    const r = await api('GET', path + (cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ''));
    items.push(...(r.items || []));
    cursor = r.next_cursor;
    if (!cursor) break;
  }
  return items;
}

// ----------------------------------------------------------------- state --
// Durable state, per user, in localStorage:
//   cursor   sync cursor of the last event applied
//   convs    {id: Conversation (+ unread_count, pinned, archived, last_message)}
//   msgs     {conversation_id: [Message sorted by seq]}
//   receipts {conversation_id: {user_id: {delivered, read}}}  (highest seqs)
//   outbox   [{conversation_id, client_id, kind, body, inserted_at, failed?}]

let state = null;
const users = new Map(); // id -> user (with online, last_seen_at), not persisted
const inflight = new Set(); // client_ids being sent right now

function emptyState() { return { cursor: null, convs: {}, msgs: {}, receipts: {}, outbox: [] }; }

function stateKey() { return `sb:state:${session.user.id}`; }

function loadState() {
  try { state = { ...emptyState(), ...JSON.parse(localStorage.getItem(stateKey())) }; } catch { state = emptyState(); }
}

let saveTimer = null;
/** Writes the state to localStorage within 200 ms (at once with now = true;
 * the page flushes it on pagehide too). */
function persist(now = false) {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (!now) { saveTimer = setTimeout(() => persist(true), 200); return; }
  if (!state || !session) return;
  const msgs = {};
  for (const [cid, list] of Object.entries(state.msgs)) msgs[cid] = list.slice(-KEEP_MESSAGES);
  try {
    localStorage.setItem(stateKey(), JSON.stringify({ ...state, msgs }));
  } catch { /* quota: the server has everything anyway */ }
}

const idOf = (x) => (x === null || x === undefined ? null : String(x));

/** Member ids of a conversation (members: [{user_id, role}]). */
function memberIds(conv) {
  return (conv?.members || []).map((m) => idOf(m.user_id));
}

function peerId(conv) {
  if (conv?.kind !== 'direct') return null;
  return memberIds(conv).find((id) => id !== idOf(session.user.id)) || null;
}

function convTitle(conv) {
  if (!conv) return '';
  if (conv.kind === 'direct') {
    const u = users.get(peerId(conv));
    if (u) return u.display_name || u.username;
    return conv.title || 'Direct chat';
  }
  return conv.title || 'Group';
}

function userName(id) {
  id = idOf(id);
  if (id === idOf(session.user.id)) return 'You';
  const u = users.get(id);
  if (!u) { fetchUser(id); return '…'; }
  return u.display_name || u.username;
}

const userFetches = new Map();
/** Loads a user (with online / last_seen_at) into `users`, once at a time. */
function fetchUser(id, force = false) {
  id = idOf(id);
  if (!id) return Promise.resolve(null);
  if (!force && users.has(id)) return Promise.resolve(users.get(id));
  if (userFetches.has(id)) return userFetches.get(id);
  const p = api('GET', `/users/${encodeURIComponent(id)}`)
    .then((r) => { users.set(id, { ...users.get(id), ...r.user }); render(); return users.get(id); })
    .catch(() => null)
    .finally(() => userFetches.delete(id));
  userFetches.set(id, p);
  return p;
}

function upsertConv(conv) {
  const id = idOf(conv.id);
  const old = state.convs[id] || {};
  const merged = { ...old, ...conv, id };
  // per-user fields absent from a generic Conversation keep their local value
  for (const k of ['unread_count', 'pinned', 'archived', 'muted_until', 'last_message']) {
    if (conv[k] === undefined && old[k] !== undefined) merged[k] = old[k];
  }
  state.convs[id] = merged;
  // the caller's own positions (the per-user conversation view); others' come as receipt events
  const me = idOf(session.user.id);
  if (conv.read_seq != null) setReceipt(id, me, 'read', conv.read_seq);
  if (conv.delivered_seq != null) setReceipt(id, me, 'delivered', conv.delivered_seq);
  if (conv.last_message) upsertMessage(conv.last_message, { quiet: true });
  if (conv.kind === 'direct') { const p = peerId(merged); if (p) fetchUser(p); }
}

/** Inserts or replaces a message (by id, then by seq); returns true if it was new. */
function upsertMessage(m, { quiet = false } = {}) {
  if (!m || m.conversation_id === undefined) return false;
  const cid = idOf(m.conversation_id);
  const list = (state.msgs[cid] ||= []);
  const i = list.findIndex((x) => idOf(x.id) === idOf(m.id) || (m.seq != null && x.seq === m.seq));
  const isNew = i < 0;
  if (isNew) {
    list.push(m);
    list.sort((a, b) => a.seq - b.seq);
  } else {
    list[i] = { ...list[i], ...m };
  }
  const conv = state.convs[cid];
  if (conv && (!conv.last_message || conv.last_message.seq <= m.seq)) conv.last_message = m;
  if (m.client_id && idOf(m.sender_id) === idOf(session.user.id)) {
    state.outbox = state.outbox.filter((o) => o.client_id !== m.client_id);
  }
  if (!quiet) render();
  return isNew;
}

function setReceipt(cid, uid, kind, seq) {
  const r = ((state.receipts[cid] ||= {})[uid] ||= { delivered: 0, read: 0 });
  r[kind] = Math.max(r[kind] || 0, Number(seq) || 0);
  if (kind === 'read') r.delivered = Math.max(r.delivered, r.read);
}

/** Applies one durable event (from sync or the user channel); idempotent. */
function applyEvent(type, p) {
  const me = idOf(session.user.id);
  switch (type) {
    case 'message:new':
    case 'message:updated': {
      const m = p.message;
      const cid = idOf(m.conversation_id);
      if (!state.convs[cid]) fetchConversation(cid);
      const isNew = upsertMessage(m, { quiet: true });
      if (type === 'message:new' && isNew && idOf(m.sender_id) !== me) {
        const conv = state.convs[cid];
        const readUpTo = state.receipts[cid]?.[me]?.read || 0;
        // counted once: the chat list's unread_count already covers seqs up to its last_seq
        if (conv && m.seq > readUpTo && m.seq > (conv.last_seq || 0) && !isViewing(cid)) {
          conv.unread_count = (conv.unread_count || 0) + 1;
        }
        if (conv) conv.last_seq = Math.max(conv.last_seq || 0, m.seq);
        queueReceipt(cid, 'delivered', m.seq);
        if (isViewing(cid)) queueReceipt(cid, 'read', m.seq);
        if (ui.open === cid) ui.typers.delete(idOf(m.sender_id)); // the message they were typing
      }
      break;
    }
    case 'message:deleted': {
      const list = state.msgs[idOf(p.conversation_id)] || [];
      const m = list.find((x) => idOf(x.id) === idOf(p.message_id));
      if (m) Object.assign(m, { deleted: true, body: null });
      break;
    }
    case 'receipt': {
      const cid = idOf(p.conversation_id);
      setReceipt(cid, idOf(p.user_id), p.kind, p.up_to_seq);
      if (idOf(p.user_id) === me && p.kind === 'read' && state.convs[cid]) {
        const list = state.msgs[cid] || [];
        state.convs[cid].unread_count = list.filter((x) => x.seq > p.up_to_seq && idOf(x.sender_id) !== me).length;
      }
      break;
    }
    case 'conversation:updated':
      upsertConv(p.conversation);
      break;
    case 'conversation:removed': {
      const cid = idOf(p.conversation_id);
      delete state.convs[cid];
      delete state.msgs[cid];
      if (ui.open === cid) closeConversation();
      break;
    }
    default:
      return;
  }
  if (p.cursor) state.cursor = p.cursor;
  persist();
  render();
}

// ------------------------------------------------------------------ sync --

let syncSupported = true;
let syncing = null;

/** Catches up through GET /sync from the stored cursor (bootstrap without
 * one; again from scratch on 410 cursor_expired). Falls back to the chat
 * list endpoint when the server has no sync endpoint. */
function syncNow() {
  if (syncing) return syncing;
  syncing = (async () => {
    for (let round = 0; round < 200; round++) {
      const q = `?limit=200${state.cursor ? `&cursor=${encodeURIComponent(state.cursor)}` : ''}`;
      let r;
      try {
        r = await api('GET', `/sync${q}`);
      } catch (e) {
        if (e.status === 410 || e.code === 'cursor_expired') {
          const outbox = state.outbox;
          state = { ...emptyState(), outbox };
          continue;
        }
        if (e.status === 404 || e.status === 405) {
          syncSupported = false;
          await loadChatList();
          return;
        }
        throw e;
      }
      const bootstrapping = !state.cursor;
      applyBootstrap(r);
      for (const ev of r.events || []) applyEvent(ev.type, ev);
      // the chat list by REST too (with the archive): what a thin snapshot leaves out
      if (bootstrapping) await loadChatList().catch(() => {});
      if (r.cursor) state.cursor = r.cursor;
      persist();
      if (!r.has_more) break;
    }
    render();
  })().finally(() => { syncing = null; });
  return syncing;
}

/** The bootstrap snapshot (no cursor): {bootstrap: {conversations, messages}}. */
function applyBootstrap(r) {
  for (const c of r.bootstrap?.conversations || []) upsertConv(c);
  for (const m of r.bootstrap?.messages || []) upsertMessage(m, { quiet: true });
}

/** The chat list from REST (also the archive), merged into state. */
async function loadChatList() {
  const [active, archived] = await Promise.all([
    apiList('/conversations'),
    apiList('/conversations?archived=true').catch(() => []),
  ]);
  for (const c of active) upsertConv(c);
  for (const c of archived) upsertConv({ ...c, archived: true });
  persist();
  render();
}

const convFetches = new Set();
function fetchConversation(cid) {
  if (convFetches.has(cid)) return;
  convFetches.add(cid);
  api('GET', `/conversations/${encodeURIComponent(cid)}`)
    .then((r) => { upsertConv(r.conversation || r); persist(); render(); })
    .catch(() => {})
    .finally(() => convFetches.delete(cid));
}

// ---------------------------------------------------------------- socket --

let socket = null;
let userCh = null;

function connect() {
  socket = new Socket('/socket', {
    params: () => ({ token: session?.access_token }),
    heartbeatIntervalMs: 25000,
    reconnectAfterMs: (tries) => [250, 500, 1000, 2000, 5000][tries - 1] || 10000,
    rejoinAfterMs: (tries) => [500, 1000, 2000][tries - 1] || 5000,
  });
  socket.onOpen(() => setConn('online'));
  socket.onClose(() => setConn('reconnecting'));
  socket.onError(() => {
    setConn('reconnecting');
    // a refused connect is often just an expired access token
    if (session && session.expires_at - Date.now() < 60000) refreshTokens().catch(() => {});
  });
  socket.connect();

  userCh = socket.channel(`user:${session.user.id}`, () => (state.cursor ? { cursor: state.cursor } : {}));
  for (const ev of DURABLE) userCh.on(ev, (p) => applyEvent(ev, p));
  userCh.on('call:incoming', (p) => onIncoming(p.call));
  userCh.on('call:updated', (p) => onCallUpdated(p.call));
  userCh.on('presence', (p) => {
    const id = idOf(p.user_id);
    users.set(id, { ...users.get(id), online: !!p.online, last_seen_at: p.last_seen_at ?? users.get(id)?.last_seen_at });
    render();
  });
  userCh.join(15000)
    .receive('ok', (r) => {
      if (r?.user) users.set(idOf(session.user.id), { ...session.user, ...r.user });
      if (!state.cursor && r?.cursor) { state.cursor = r.cursor; persist(); }
      // without sync support the channel cannot catch up: reload what may have changed
      if (!syncSupported) {
        loadChatList().catch(() => {});
        if (ui.open) loadLatest(ui.open).catch(() => {});
      }
      flushOutbox();
      if (ui.open) markRead(ui.open);
      if (!call) resumeActiveCall();
    })
    .receive('error', (r) => {
      if (r?.reason === 'cursor_expired') { state.cursor = null; syncNow().catch(() => {}); }
    });
}

function setConn(s) {
  const el = $('#conn');
  el.textContent = s;
  el.className = `conn ${s}`;
}

// ---------------------------------------------------------------- sending --

/** Uploads a file (a Blob) to POST /api/v1/media as the raw body; the server sniffs
 * its type. Resolves to the media {id, mime, size, width?, height?, duration_ms?}. */
async function uploadMedia(blob, filename, retried = false) {
  if (session && session.expires_at - Date.now() < 30000 && !retried) await refreshTokens().catch(() => {});
  const res = await fetch(`${API}/media`, {
    method: 'POST',
    headers: {
      'content-type': blob.type || 'application/octet-stream',
      'x-filename': encodeURIComponent(filename || 'file'),
      authorization: `Bearer ${session.access_token}`,
    },
    body: blob,
  });
  if (res.status === 401 && !retried) { await refreshTokens(); return uploadMedia(blob, filename, true); }
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(data?.error?.message || `${res.status} ${res.statusText}`);
  return data.media;
}

/** Uploads then sends a media message (kind image or voice) through the outbox. */
async function sendMedia(cid, kind, blob, filename) {
  $('#media-error').textContent = '';
  let media;
  try {
    media = await uploadMedia(blob, filename);
  } catch (e) {
    $('#media-error').textContent = `Could not send the ${kind === 'voice' ? 'voice note' : 'picture'}: ${e.message}`;
    return;
  }
  // the local copy shows at once, without downloading it again
  if (!mediaUrls.has(media.id)) mediaUrls.set(media.id, Promise.resolve(URL.createObjectURL(blob)));
  const item = {
    conversation_id: cid, client_id: randomId(), kind, body: null, media_id: media.id, media,
    sender_id: session.user.id, inserted_at: new Date().toISOString(),
  };
  state.outbox.push(item);
  persist(true);
  stickToBottom = true;
  render();
  pushSend(item);
}

// media id -> Promise<object URL>: GET /api/v1/media/:id needs the bearer token,
// so an <img>/<audio> cannot fetch it itself: fetch -> blob -> object URL, once per id
const mediaUrls = new Map();
// `${message key}:${media id}` -> the <img>/<audio> element, reused across renders so a
// playing voice note is not interrupted and an image is not reloaded
const mediaEls = new Map();

function mediaUrl(id) {
  let p = mediaUrls.get(id);
  if (!p) {
    p = (async () => {
      const get = () => fetch(`${API}/media/${encodeURIComponent(id)}`, {
        headers: { authorization: `Bearer ${session.access_token}` },
      });
      let res = await get();
      if (res.status === 401) { await refreshTokens(); res = await get(); }
      if (!res.ok) throw new Error(`${res.status}`);
      return URL.createObjectURL(await res.blob());
    })();
    mediaUrls.set(id, p);
    p.catch(() => mediaUrls.delete(id)); // a later render tries again
  }
  return p;
}

/** The element showing a message's media: an inline image, or an audio player. */
function mediaElement(m) {
  const id = m.media?.id || m.media_id;
  if (!id) return null;
  const key = `${m.client_id || m.id}:${id}`;
  let el = mediaEls.get(key);
  if (el) return el;
  if (m.kind === 'image') {
    el = h('img', { class: 'media-img', alt: m.media?.filename || 'picture', dataset: { mediaId: id } });
    if (m.media?.width && m.media?.height) {
      el.width = Math.min(m.media.width, 320);
      el.style.aspectRatio = `${m.media.width} / ${m.media.height}`;
      el.style.height = 'auto';
    }
  } else if (['voice', 'audio'].includes(m.kind)) {
    el = h('audio', { class: 'media-audio', controls: true, preload: 'metadata', dataset: { mediaId: id } });
    // a recording without a duration in its header (WebM from MediaRecorder) reports
    // Infinity until the player has seen its end: seek there once, then back
    el.addEventListener('loadedmetadata', () => {
      if (el.duration !== Infinity) return;
      el.addEventListener('durationchange', () => { el.currentTime = 0; }, { once: true });
      el.currentTime = 1e9;
    });
  } else {
    return null;
  }
  mediaEls.set(key, el);
  mediaUrl(id).then((url) => { el.src = url; }).catch(() => { el.dataset.failed = '1'; });
  return el;
}

let recorder = null; // the voice note being recorded: {rec, chunks, stream, cid}

/** The record button: the first click starts recording the microphone, the second
 * stops and sends it as a voice note (Ogg/Opus where the browser can, else WebM). */
async function toggleRecording() {
  const btn = $('#record-btn');
  if (recorder) { recorder.rec.stop(); return; }
  if (!ui.open || typeof MediaRecorder === 'undefined') return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    $('#media-error').textContent = `No microphone: ${e.message}`;
    return;
  }
  const type = ['audio/ogg;codecs=opus', 'audio/webm;codecs=opus', 'audio/webm']
    .find((t) => MediaRecorder.isTypeSupported(t));
  const rec = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  const cur = (recorder = { rec, chunks: [], stream, cid: ui.open });
  rec.addEventListener('dataavailable', (e) => { if (e.data.size) cur.chunks.push(e.data); });
  rec.addEventListener('stop', () => {
    recorder = null;
    stream.getTracks().forEach((t) => t.stop());
    btn.classList.remove('recording');
    btn.textContent = 'Voice';
    const mime = rec.mimeType || type || 'audio/webm';
    const blob = new Blob(cur.chunks, { type: mime });
    if (blob.size) sendMedia(cur.cid, 'voice', blob, `voice.${mime.includes('ogg') ? 'ogg' : 'webm'}`);
  });
  rec.start();
  btn.classList.add('recording');
  btn.textContent = 'Stop & send';
}

function sendMessage(cid, body) {
  const item = {
    conversation_id: cid, client_id: randomId(), kind: 'text', body,
    sender_id: session.user.id, inserted_at: new Date().toISOString(),
  };
  state.outbox.push(item);
  persist(true); // the outbox survives a reload right away
  render();
  pushSend(item);
}

/** Sends one outbox item over user:<me>; idempotent on client_id, so a retry after a
 * timeout or a reconnect cannot duplicate it. Refused (4xx-like) items stay, marked failed. */
function pushSend(item) {
  if (inflight.has(item.client_id) || !userCh) return;
  inflight.add(item.client_id);
  const { conversation_id, client_id, kind, body, media_id } = item;
  const payload = { conversation_id, client_id, kind, body };
  if (media_id) payload.media_id = media_id;
  userCh.push('message:send', payload, 15000)
    .receive('ok', (r) => {
      inflight.delete(client_id);
      if (r?.message) upsertMessage(r.message);
      state.outbox = state.outbox.filter((o) => o.client_id !== client_id);
      persist();
      render();
    })
    .receive('error', (r) => {
      inflight.delete(client_id);
      const transient = ['unavailable', 'rate_limited', 'unmatched topic'].includes(r?.reason);
      if (!transient) { item.failed = r?.message || r?.reason || 'refused'; persist(); render(); }
      else setTimeout(() => pushSend(item), 2000);
    })
    .receive('timeout', () => { inflight.delete(client_id); });
}

function flushOutbox() {
  for (const item of state.outbox) if (!item.failed) pushSend(item);
}

const pendingReceipts = new Map(); // `${cid}:${kind}` -> seq
let receiptTimer = null;

/** Sends a receipt up to seq (coalesced over 150 ms, never backwards). */
function queueReceipt(cid, kind, seq) {
  const me = idOf(session.user.id);
  const have = state.receipts[cid]?.[me]?.[kind] || 0;
  if (!seq || seq <= have) return;
  const k = `${cid}:${kind}`;
  pendingReceipts.set(k, Math.max(pendingReceipts.get(k) || 0, seq));
  clearTimeout(receiptTimer);
  receiptTimer = setTimeout(() => {
    for (const [key, up] of pendingReceipts) {
      const [c, kd] = key.split(':');
      if (up <= (state.receipts[c]?.[me]?.[kd] || 0)) continue;
      userCh?.push('receipt', { conversation_id: c, kind: kd, up_to_seq: up }, 15000)
        .receive('ok', () => { setReceipt(c, me, kd, up); persist(); });
    }
    pendingReceipts.clear();
  }, 150);
}

function isViewing(cid) { return ui.open === cid && document.visibilityState === 'visible'; }

function markRead(cid) {
  if (!isViewing(cid)) return;
  const me = idOf(session.user.id);
  const list = state.msgs[cid] || [];
  const theirs = list.filter((m) => idOf(m.sender_id) !== me && m.seq);
  const top = theirs.length ? theirs[theirs.length - 1].seq : 0;
  if (state.convs[cid] && state.convs[cid].unread_count) { state.convs[cid].unread_count = 0; persist(); render(); }
  if (top) { queueReceipt(cid, 'delivered', top); queueReceipt(cid, 'read', top); }
}

/** ✓ sent, ✓✓ delivered to every other member, ✓✓ (blue) read by every other member. */
function statusOf(m) {
  if (!m.seq) return m.failed ? 'failed' : 'pending';
  const cid = idOf(m.conversation_id);
  const me = idOf(session.user.id);
  const others = memberIds(state.convs[cid]).filter((id) => id !== me);
  const rec = state.receipts[cid] || {};
  const who = others.length ? others : Object.keys(rec).filter((id) => id !== me);
  if (!who.length) return 'sent';
  if (who.every((id) => (rec[id]?.read || 0) >= m.seq)) return 'read';
  if (who.every((id) => (rec[id]?.delivered || 0) >= m.seq)) return 'delivered';
  return 'sent';
}

const STATUS_MARK = { pending: '◷', failed: '!', sent: '✓', delivered: '✓✓', read: '✓✓' };

// ---------------------------------------------------- conversation channel --

const ui = {
  open: null, // open conversation id
  tab: 'chats',
  convCh: null,
  presence: null,
  viewers: [],
  typers: new Map(), // user_id -> expires at (ms)
  typingSentAt: 0,
  typingStopTimer: null,
  noMoreHistory: new Set(),
  loadingEarlier: false, // a "Load earlier" fetch is under way
  groupPick: new Map(), // user id -> user, for a new group
};

async function openConversation(cid) {
  cid = idOf(cid);
  if (ui.open === cid && (ui.convCh || !socket)) return;
  leaveConvChannel();
  ui.open = cid;
  ui.typers.clear();
  ui.viewers = [];
  if (location.hash !== `#/c/${cid}`) history.replaceState(null, '', `#/c/${cid}`);
  stickToBottom = true;
  render();
  $('#message-input').focus();
  if (!socket) return; // still starting: startApp opens it again once connected

  ui.convCh = socket.channel(`conversation:${cid}`, {});
  ui.presence = new Presence(ui.convCh);
  ui.presence.onSync(() => {
    ui.viewers = ui.presence.list((id) => id);
    render();
  });
  ui.convCh.on('typing', (p) => {
    const uid = idOf(p.user_id);
    if (uid === idOf(session.user.id)) return;
    if (p.state === 'start') ui.typers.set(uid, Date.now() + 6000);
    else ui.typers.delete(uid);
    render();
  });
  const ch = ui.convCh;
  ch.join(15000).receive('error', (r) => {
    // not a member (any more): stop phoenix.js from rejoining forever
    if (['not_found', 'forbidden'].includes(r?.reason)) ch.leave();
  });

  const conv = state.convs[cid];
  if (conv?.kind === 'direct') fetchUser(peerId(conv), true);
  if ((state.msgs[cid] || []).length < PAGE) await loadLatest(cid).catch(() => {});
  markRead(cid);
}

function leaveConvChannel() {
  if (ui.convCh) {
    sendTyping('stop');
    ui.convCh.leave();
  }
  ui.convCh = null;
  ui.presence = null;
}

function closeConversation() {
  leaveConvChannel();
  ui.open = null;
  history.replaceState(null, '', location.pathname);
  render();
}

/** The newest page of history (REST), merged into state. */
async function loadLatest(cid) {
  const r = await api('GET', `/conversations/${encodeURIComponent(cid)}/messages?limit=${PAGE}`);
  for (const m of r.items || []) upsertMessage(m, { quiet: true });
  if ((r.items || []).length < PAGE) ui.noMoreHistory.add(cid);
  persist();
  render();
}

/** "Load earlier": the page before the oldest message we have (one fetch at a time). */
async function loadEarlier(cid) {
  if (ui.loadingEarlier) return;
  ui.loadingEarlier = true;
  try { await loadEarlierPage(cid); } finally { ui.loadingEarlier = false; }
}

async function loadEarlierPage(cid) {
  const list = state.msgs[cid] || [];
  const before = list.length ? list[0].seq : null;
  if (before === 1) { ui.noMoreHistory.add(cid); render(); return; }
  const box = $('#messages');
  const fromBottom = box.scrollHeight - box.scrollTop;
  const q = `limit=${PAGE}${before ? `&before_seq=${before}` : ''}`;
  const r = await api('GET', `/conversations/${encodeURIComponent(cid)}/messages?${q}`);
  for (const m of r.items || []) upsertMessage(m, { quiet: true });
  if ((r.items || []).length < PAGE) ui.noMoreHistory.add(cid);
  stickToBottom = false;
  renderNow();
  box.scrollTop = box.scrollHeight - fromBottom;
}

function sendTyping(s) {
  if (!ui.convCh) return;
  clearTimeout(ui.typingStopTimer);
  if (s === 'start') {
    if (Date.now() - ui.typingSentAt > 2500) {
      ui.typingSentAt = Date.now();
      ui.convCh.push('typing', { state: 'start' });
    }
    ui.typingStopTimer = setTimeout(() => sendTyping('stop'), 4000);
  } else if (ui.typingSentAt) {
    ui.typingSentAt = 0;
    ui.convCh.push('typing', { state: 'stop' });
  }
}

// ------------------------------------------------------------------ calls --
// One call at a time (docs/web.md "Calls"). POST /calls starts one (its
// answer carries the ICE servers); call:incoming on user:<me> rings;
// call:<id> carries the server's state machine (state events; pushes
// ringing / accept / decline / connected / hangup) and the signaling relay
// (signal offer / answer / ice, addressed to the other participant); the
// browser's RTCPeerConnection does the media. The caller offers once the
// callee has accepted (state connecting), so every ICE candidate reaches a
// joined peer. localStorage `sb:ice-transport-policy` = "relay" forces TURN
// (debugging, and the relay browser test).

const CALL_LIVE = ['dialing', 'ringing', 'connecting', 'connected'];
let call = null; // the current call, see newCall()
let callNotice = null; // {text, until}: the last call's ending, shown briefly
let callNoticeTimer = null;

function newCall(fields) {
  return {
    id: null, c: null, role: 'caller', peer: null, media: 'audio', ch: null, pc: null, local: null,
    iceServers: [], pending: [], signals: Promise.resolve(), offered: false, accepted: false,
    connectedSent: false, connectedAt: 0, muted: false, ice: 'new', log: [], ...fields,
  };
}

function iceTransportPolicy() {
  return localStorage.getItem('sb:ice-transport-policy') === 'relay' ? 'relay' : 'all';
}

async function getMedia(media) {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: media === 'video' });
  } catch (e) {
    console.warn('no camera/microphone; the call receives only', e);
    return null;
  }
}

/** The RTCPeerConnection of the current call, with the server's ICE servers. */
function makePeerConnection() {
  const cur = call;
  const pc = new RTCPeerConnection({ iceServers: cur.iceServers, iceTransportPolicy: iceTransportPolicy() });
  cur.pc = pc;
  if (cur.local) for (const t of cur.local.getTracks()) pc.addTrack(t, cur.local);
  else {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    if (cur.media === 'video') pc.addTransceiver('video', { direction: 'recvonly' });
  }
  pc.onicecandidate = (e) => { if (e.candidate && call === cur) sendSignal('ice', e.candidate.toJSON()); };
  pc.ontrack = (e) => {
    const v = $('#remote-video');
    if (v.srcObject !== e.streams[0]) v.srcObject = e.streams[0] || new MediaStream([e.track]);
  };
  pc.oniceconnectionstatechange = () => {
    if (call !== cur) return;
    cur.ice = pc.iceConnectionState;
    if ((cur.ice === 'connected' || cur.ice === 'completed') && !cur.connectedSent) {
      cur.connectedSent = true;
      cur.ch?.push('connected', {}, 15000).receive('ok', (r) => r?.call && applyCallState(r.call));
    }
    if (cur.ice === 'failed') hangup('Connection failed');
    renderCall();
  };
  $('#local-video').srcObject = cur.local;
  return pc;
}

function sendSignal(type, data) {
  call?.ch?.push('signal', { to: call.peer, type, data }, 15000);
}

/** An incoming signal, applied in arrival order (one at a time). */
function onSignal(p) {
  const cur = call;
  if (!cur || idOf(p.from) !== idOf(cur.peer)) return;
  cur.signals = cur.signals.then(async () => {
    if (call !== cur || !cur.pc) return;
    const pc = cur.pc;
    if (p.type === 'offer' || p.type === 'restart') {
      await pc.setRemoteDescription(p.data);
      await flushCandidates(cur);
      await pc.setLocalDescription(await pc.createAnswer());
      sendSignal('answer', { type: 'answer', sdp: pc.localDescription.sdp });
    } else if (p.type === 'answer') {
      await pc.setRemoteDescription(p.data);
      await flushCandidates(cur);
    } else if (p.type === 'ice') {
      if (pc.remoteDescription) await pc.addIceCandidate(p.data);
      else cur.pending.push(p.data);
    }
  }).catch((e) => { cur.log.push(`signal ${p.type}: ${e.message}`); console.warn('signal', p.type, e); });
}

async function flushCandidates(cur) {
  const list = cur.pending.splice(0);
  for (const c of list) await cur.pc.addIceCandidate(c);
}

/** The caller's offer, once the callee has accepted (state connecting). */
async function sendOffer(cur) {
  if (cur.offered || !cur.pc) return;
  cur.offered = true;
  const pc = cur.pc;
  await pc.setLocalDescription(await pc.createOffer());
  if (call === cur) sendSignal('offer', { type: 'offer', sdp: pc.localDescription.sdp });
}

/** Joins call:<id>; resolves with the join reply's call (rejects when refused). */
function joinCallChannel(cur) {
  const ch = socket.channel(`call:${cur.id}`, {});
  cur.ch = ch;
  ch.on('state', (p) => { if (call === cur) applyCallState(p.call); });
  ch.on('signal', (p) => { if (call === cur) onSignal(p); });
  return new Promise((resolve, reject) => {
    ch.join(15000)
      .receive('ok', (r) => resolve(r?.call))
      .receive('error', (r) => { ch.leave(); reject(new Error(r?.message || r?.reason || 'refused')); })
      .receive('timeout', () => reject(new Error('timeout')));
  });
}

/** Follows the server's state of the current call. */
function applyCallState(c) {
  const cur = call;
  if (!cur || !c || idOf(c.id) !== idOf(cur.id)) return;
  cur.c = c;
  if (c.state === 'ended') {
    const why = {
      hangup: 'Call ended', declined: 'Call declined', missed: 'No answer', busy: 'Busy',
      failed: 'Call failed', connection_lost: 'Connection lost', answered_elsewhere: 'Answered on another device',
    }[c.end_reason] || 'Call ended';
    finishCall(why);
    return;
  }
  if (c.state === 'connecting' || c.state === 'connected') cur.accepted = true;
  if (c.state === 'connecting' && cur.role === 'caller') sendOffer(cur).catch((e) => hangup(`Could not connect: ${e.message}`));
  renderCall();
}

/** Starts a call in the open direct chat. */
async function startCall(media) {
  const cid = ui.open;
  const conv = state.convs[cid];
  if (call || !conv || conv.kind !== 'direct' || !socket) return;
  const cur = (call = newCall({ role: 'caller', peer: peerId(conv), media }));
  renderCall();
  cur.local = await getMedia(media);
  if (call !== cur) { cur.local?.getTracks().forEach((t) => t.stop()); return; }
  let r;
  try {
    r = await api('POST', '/calls', { conversation_id: cid, media });
  } catch (e) {
    finishCall(`Could not call: ${e.message}`);
    return;
  }
  if (call !== cur) return;
  cur.id = idOf(r.call.id);
  cur.c = r.call;
  cur.iceServers = r.ice_servers || [];
  // glare: the other side's call came back as our accept; we are its callee
  if (idOf(r.call.caller_id) !== idOf(session.user.id)) {
    cur.role = 'callee';
    cur.peer = idOf(r.call.caller_id);
    cur.accepted = true;
  }
  if (r.call.state === 'ended') { applyCallState(r.call); return; }
  makePeerConnection();
  try {
    const c = await joinCallChannel(cur);
    applyCallState(c || r.call);
  } catch (e) {
    finishCall(`Call unavailable: ${e.message}`);
  }
}

/** call:incoming (or a ringing call found at start): join, tell the server this device rings. */
async function onIncoming(c) {
  const me = idOf(session.user.id);
  if (call || !c || !['dialing', 'ringing'].includes(c.state) || idOf(c.caller_id) === me) return;
  const mine = (c.participants || []).find((p) => idOf(p.user_id) === me);
  if (!mine || !['invited', 'ringing'].includes(mine.state)) return;
  const cur = (call = newCall({ id: idOf(c.id), c, role: 'callee', peer: idOf(c.caller_id), media: c.media, incoming: true }));
  fetchUser(cur.peer);
  let now;
  try {
    now = await joinCallChannel(cur);
  } catch {
    if (call === cur) { call = null; renderCall(); }
    return;
  }
  if (call !== cur) return;
  if (!now || !['dialing', 'ringing'].includes(now.state)) { // an old invitation, replayed: over already
    cur.ch.leave();
    call = null;
    renderCall();
    return;
  }
  cur.c = now;
  cur.ch.push('ringing', {}, 15000).receive('ok', (r) => r?.call && applyCallState(r.call));
  renderCall();
}

async function acceptCall() {
  const cur = call;
  if (!cur || cur.role !== 'callee' || cur.accepted || cur.accepting) return;
  cur.accepting = true;
  renderCall();
  cur.local = await getMedia(cur.media);
  try {
    cur.iceServers = (await api('GET', '/turn')).ice_servers || [];
  } catch { cur.iceServers = []; }
  if (call !== cur) { cur.local?.getTracks().forEach((t) => t.stop()); return; }
  makePeerConnection();
  cur.ch.push('accept', {}, 15000)
    .receive('ok', (r) => { cur.accepted = true; cur.accepting = false; applyCallState(r.call); })
    .receive('error', (r) => { if (call === cur) finishCall(r?.message || 'Could not answer'); })
    .receive('timeout', () => { if (call === cur) finishCall('Could not answer (timeout)'); });
}

function declineCall() {
  if (!call) return;
  call.ch?.push('decline', {}, 15000);
  finishCall('Declined');
}

/** Hangs up (or cancels an outgoing call) and tells the server. */
function hangup(text = 'Call ended') {
  if (!call) return;
  call.ch?.push('hangup', {}, 15000);
  finishCall(text);
}

function toggleMute() {
  if (!call) return;
  call.muted = !call.muted;
  for (const t of call.local?.getAudioTracks() || []) t.enabled = !call.muted;
  renderCall();
}

/** Tears the current call down locally and shows `text` for a moment. */
function finishCall(text) {
  const cur = call;
  if (!cur) return;
  call = null;
  lastCall = { id: cur.id, state: cur.c?.state, end_reason: cur.c?.end_reason, text, ice: cur.ice, log: cur.log };
  try { cur.pc?.close(); } catch { /* closed */ }
  cur.local?.getTracks().forEach((t) => t.stop());
  cur.ch?.leave();
  $('#remote-video').srcObject = null;
  $('#local-video').srcObject = null;
  callNotice = { text, until: Date.now() + 2500 };
  clearTimeout(callNoticeTimer);
  callNoticeTimer = setTimeout(() => { callNotice = null; renderCall(); }, 2500);
  renderCall();
}
let lastCall = null;

function onCallUpdated(c) {
  if (call && c && idOf(c.id) === idOf(call.id) && c.state === 'ended') applyCallState(c);
}

/** At start: a call ringing for this user (e.g. the page was closed while it rang). */
async function resumeActiveCall() {
  try {
    const r = await api('GET', '/calls/active');
    if (r?.call) onIncoming(r.call);
  } catch { /* no calls on this server */ }
}

function fmtDuration(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function renderCall() {
  const el = $('#call');
  const cur = call;
  el.hidden = !cur && !callNotice;
  if (el.hidden) return;
  const incoming = !!cur && cur.role === 'callee' && !cur.accepted;
  el.classList.toggle('incoming', incoming);
  el.classList.toggle('audio', (cur?.media || 'audio') !== 'video');
  el.dataset.state = cur ? (cur.c?.state || 'starting') : 'ended';
  el.dataset.ice = cur?.ice || '';
  $('#call-peer').textContent = cur ? userName(cur.peer) : '';
  let status;
  if (!cur) status = callNotice.text;
  else if (incoming) status = cur.accepting ? 'Answering…' : `Incoming ${cur.media} call`;
  else {
    const st = cur.c?.state;
    const live = cur.ice === 'connected' || cur.ice === 'completed';
    if (live) {
      if (!cur.connectedAt) cur.connectedAt = Date.now();
      status = `Connected ${fmtDuration(Date.now() - cur.connectedAt)}${cur.muted ? ' · muted' : ''}`;
    } else if (st === 'ringing') status = 'Ringing…';
    else if (st === 'connecting' || st === 'connected') status = 'Connecting…';
    else status = 'Calling…';
  }
  $('#call-status').textContent = status;
  $('#call-accept').hidden = !incoming;
  $('#call-accept').disabled = !!cur?.accepting;
  $('#call-decline').hidden = !incoming;
  $('#call-mute').hidden = !cur || incoming;
  $('#call-mute').textContent = cur?.muted ? 'Unmute' : 'Mute';
  $('#call-hangup').hidden = !cur || incoming;
}

setInterval(() => { if (call?.connectedAt) renderCall(); }, 1000);

// ----------------------------------------------------------------- render --

let renderQueued = false;
let stickToBottom = true;

function render() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(renderNow, 0);
}

function renderNow() {
  renderQueued = false;
  if (!state || !session) return;
  $('#me-name').textContent = session.user.display_name || session.user.username;
  renderChatList();
  renderConversation();
}

function sortKey(c) {
  return c.last_message?.inserted_at || c.updated_at || c.inserted_at || c.created_at || '';
}

function renderChatList() {
  const me = idOf(session.user.id);
  const all = Object.values(state.convs);
  const archivedCount = all.filter((c) => c.archived).length;
  $('#tab-archived').textContent = `Archived${archivedCount ? ` (${archivedCount})` : ''}`;
  $('#tab-chats').classList.toggle('active', ui.tab === 'chats');
  $('#tab-archived').classList.toggle('active', ui.tab === 'archived');
  const convs = all
    .filter((c) => !!c.archived === (ui.tab === 'archived'))
    .sort((a, b) => (!!b.pinned - !!a.pinned) || sortKey(b).localeCompare(sortKey(a)));
  const items = convs.map((c) => {
    const last = c.last_message;
    const peer = users.get(peerId(c));
    const preview = !last ? 'No messages yet'
      : last.deleted ? 'message deleted'
        : `${idOf(last.sender_id) === me ? 'You: ' : c.kind === 'group' ? `${userName(last.sender_id)}: ` : ''}${last.body ?? KIND_LABEL[last.kind] ?? `[${last.kind}]`}`;
    const unread = c.unread_count || 0;
    return h('li', {
      class: `chat${ui.open === c.id ? ' open' : ''}${unread ? ' has-unread' : ''}`,
      dataset: { id: c.id },
      onclick: () => openConversation(c.id),
    },
    h('div', { class: 'chat-top' },
      h('span', { class: 'chat-title' },
        c.kind === 'direct' && peer?.online ? h('span', { class: 'dot', title: 'online' }) : null,
        convTitle(c)),
      h('span', { class: 'chat-time muted' }, fmtTime(last?.inserted_at))),
    h('div', { class: 'chat-bottom' },
      h('span', { class: 'chat-preview muted' }, preview),
      c.pinned ? h('span', { class: 'pin', title: 'pinned' }, '★') : null,
      unread ? h('span', { class: 'unread', title: 'unread' }, String(unread)) : null),
    h('div', { class: 'chat-actions' },
      h('button', { class: 'link pin-btn', onclick: (e) => { e.stopPropagation(); setMine(c.id, { pinned: !c.pinned }); } },
        c.pinned ? 'Unpin' : 'Pin'),
      h('button', { class: 'link archive-btn', onclick: (e) => { e.stopPropagation(); setMine(c.id, { archived: !c.archived }); } },
        c.archived ? 'Unarchive' : 'Archive')));
  });
  $('#chat-list').replaceChildren(...(items.length ? items
    : [h('li', { class: 'muted empty' }, ui.tab === 'archived' ? 'No archived chats.' : 'No chats yet.')]));
}

function renderConversation() {
  const cid = ui.open;
  const conv = cid && state.convs[cid];
  $('#empty-state').hidden = !!cid;
  $('#conv-view').hidden = !cid;
  if (!cid) return;
  const me = idOf(session.user.id);
  $('#conv-title').textContent = conv ? convTitle(conv) : '…';

  // online / last seen (direct), members online (group)
  let status = '';
  if (conv?.kind === 'direct') {
    const u = users.get(peerId(conv));
    status = !u ? '' : u.online ? 'online' : fmtLastSeen(u.last_seen_at);
  } else if (conv) {
    const ids = memberIds(conv);
    const on = ids.filter((id) => id === me || users.get(id)?.online).length;
    status = `${ids.length} members${ids.length ? `, ${on} online` : ''}`;
  }
  $('#conv-status').textContent = status;
  $('#call-buttons').hidden = conv?.kind !== 'direct';
  $('#call-audio-btn').disabled = !!call;
  $('#call-video-btn').disabled = !!call;

  const others = ui.viewers.filter((id) => idOf(id) !== me);
  $('#viewers').textContent = others.length
    ? `${others.map(userName).join(', ')} ${others.length > 1 ? 'are' : 'is'} viewing` : '';

  const now = Date.now();
  for (const [uid, until] of ui.typers) if (until < now) ui.typers.delete(uid);
  const typers = [...ui.typers.keys()].map(userName);
  $('#typing').textContent = typers.length ? `${typers.join(', ')} ${typers.length > 1 ? 'are' : 'is'} typing…` : '';

  const msgs = [...(state.msgs[cid] || []), ...state.outbox.filter((o) => idOf(o.conversation_id) === cid)];
  const box = $('#messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const items = msgs.map((m) => {
    const mine = idOf(m.sender_id) === me;
    const st = mine ? statusOf(m) : null;
    const media = m.deleted ? null : mediaElement(m);
    return h('li', {
      class: `msg ${mine ? 'mine' : 'theirs'}${m.deleted ? ' deleted' : ''}`,
      dataset: { seq: m.seq ?? '', clientId: m.client_id ?? '', id: m.id ?? '' },
    },
    !mine && conv?.kind === 'group' ? h('div', { class: 'sender' }, userName(m.sender_id)) : null,
    media,
    m.deleted || !media || m.body
      ? h('div', { class: 'body' }, m.deleted ? 'message deleted' : (m.body ?? `[${m.kind}]`)) : null,
    h('div', { class: 'meta' },
      m.edited_at ? h('span', { class: 'muted' }, 'edited ') : null,
      h('time', { datetime: m.inserted_at }, fmtTime(m.inserted_at)),
      st ? h('span', {
        class: `status status-${st}`,
        title: st === 'failed' ? `not sent: ${m.failed} (click to retry)` : st,
        onclick: st === 'failed' ? () => { delete m.failed; pushSend(m); render(); } : null,
      }, ` ${STATUS_MARK[st]}`) : null));
  });
  $('#message-list').replaceChildren(...items);
  const noMore = ui.noMoreHistory.has(cid) || (msgs[0] && msgs[0].seq === 1);
  $('#load-earlier').hidden = !!noMore || !msgs.length;
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
  stickToBottom = false;
}

setInterval(() => { if (ui.typers.size) render(); }, 1000);

// ----------------------------------------------------------------- actions --

async function setMine(cid, patch) {
  const conv = state.convs[cid];
  const before = { pinned: conv.pinned, archived: conv.archived };
  Object.assign(conv, patch);
  render();
  try {
    const r = await api('PUT', `/conversations/${encodeURIComponent(cid)}/me`, patch);
    if (r?.conversation) upsertConv(r.conversation);
  } catch (e) {
    Object.assign(conv, before);
    alert(`Could not update the chat: ${e.message}`);
  }
  persist();
  render();
}

async function startDirect(user) {
  try {
    const r = await api('POST', '/conversations', { kind: 'direct', user_id: user.id });
    users.set(idOf(user.id), { ...users.get(idOf(user.id)), ...user });
    upsertConv(r.conversation);
    persist();
    clearSearch();
    ui.tab = r.conversation.archived ? 'archived' : 'chats';
    openConversation(r.conversation.id);
  } catch (e) {
    alert(`Could not open the chat: ${e.message}`);
  }
}

async function createGroup() {
  const title = $('#group-title').value.trim();
  const memberIdsPicked = [...ui.groupPick.keys()];
  if (!title) { $('#group-title').focus(); return; }
  try {
    const r = await api('POST', '/conversations', { kind: 'group', title, member_ids: memberIdsPicked });
    upsertConv(r.conversation);
    persist();
    ui.groupPick.clear();
    $('#group-title').value = '';
    clearSearch();
    openConversation(r.conversation.id);
  } catch (e) {
    alert(`Could not create the group: ${e.message}`);
  }
}

function clearSearch() {
  $('#user-search').value = '';
  $('#search-results').replaceChildren();
  renderGroupBuilder();
}

function renderGroupBuilder() {
  $('#group-builder').hidden = ui.groupPick.size === 0;
  $('#group-members').replaceChildren(...[...ui.groupPick.values()].map((u) => h('span', { class: 'chip' },
    u.display_name || u.username,
    h('button', { class: 'link', title: 'remove', onclick: () => { ui.groupPick.delete(idOf(u.id)); renderGroupBuilder(); } }, '×'))));
}

let searchTimer = null;
let searchSeq = 0;
function onSearchInput() {
  clearTimeout(searchTimer);
  const q = $('#user-search').value.trim();
  if (!q) { $('#search-results').replaceChildren(); return; }
  searchTimer = setTimeout(async () => {
    const mine = ++searchSeq;
    let found = [];
    try { found = (await api('GET', `/users?q=${encodeURIComponent(q)}&limit=10`)).items || []; } catch { /* shown empty */ }
    if (mine !== searchSeq) return;
    const me = idOf(session.user.id);
    $('#search-results').replaceChildren(...found.filter((u) => idOf(u.id) !== me).map((u) => h('li', { class: 'result', dataset: { username: u.username } },
      h('span', {}, h('strong', {}, u.display_name || u.username), ' ', h('span', { class: 'muted' }, `@${u.username}`)),
      h('span', {},
        h('button', { class: 'link message-btn', onclick: () => startDirect(u) }, 'Message'),
        h('button', { class: 'link add-btn', onclick: () => { ui.groupPick.set(idOf(u.id), u); renderGroupBuilder(); } }, '+ group')))));
    if (!found.length) $('#search-results').append(h('li', { class: 'muted' }, 'Nobody by that name.'));
  }, 200);
}

// ------------------------------------------------------------------- auth --

async function onAuthSubmit(ev) {
  ev.preventDefault();
  const mode = ev.submitter?.value || 'login';
  const username = $('#auth-username').value.trim();
  const password = $('#auth-password').value;
  const display = $('#auth-display').value.trim() || username;
  $('#auth-error').textContent = '';
  try {
    const body = mode === 'signup' ? { username, password, display_name: display } : { username, password };
    const res = await fetch(`${API}/auth/${mode}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const det = data?.error?.details || {};
      const fields = Object.entries(det).map(([k, v]) => `${k} ${v}`).join('; ');
      throw new Error(fields || data?.error?.message || `${res.status}`);
    }
    saveSession(data);
    $('#auth-password').value = '';
    startApp();
  } catch (e) {
    $('#auth-error').textContent = e.message;
  }
}

function signOut(message = '') {
  if (call) hangup();
  if (socket) socket.disconnect();
  socket = null;
  userCh = null;
  ui.open = null;
  ui.convCh = null;
  clearTimeout(refreshTimer);
  if (session && state) localStorage.removeItem(stateKey());
  session = null;
  state = null;
  users.clear();
  sessionStorage.removeItem('sb:session');
  history.replaceState(null, '', location.pathname);
  $('#app').hidden = true;
  $('#auth').hidden = false;
  $('#auth-error').textContent = message;
}

async function logout() {
  try {
    await fetch(`${API}/auth/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${session.access_token}` },
      body: JSON.stringify({ refresh_token: session.refresh_token }),
    });
  } catch { /* signed out locally anyway */ }
  signOut();
}

// ----------------------------------------------------------------- start --

async function startApp() {
  $('#auth').hidden = true;
  $('#app').hidden = false;
  loadState();
  users.set(idOf(session.user.id), session.user);
  scheduleRefresh();
  renderNow(); // what we had: visible at once, even offline
  setConn('connecting');
  try {
    await syncNow();
  } catch (e) {
    console.warn('sync failed; the channel catches up from the cursor', e);
  }
  connect();
  const m = location.hash.match(/^#\/c\/(.+)$/);
  if (m) openConversation(decodeURIComponent(m[1]));
  else if (ui.open) openConversation(ui.open);
}

function wireUi() {
  $('#auth-form').addEventListener('submit', onAuthSubmit);
  $('#logout-btn').addEventListener('click', logout);
  $('#user-search').addEventListener('input', onSearchInput);
  $('#create-group-btn').addEventListener('click', createGroup);
  $('#call-audio-btn').addEventListener('click', () => startCall('audio'));
  $('#call-video-btn').addEventListener('click', () => startCall('video'));
  $('#call-accept').addEventListener('click', acceptCall);
  $('#call-decline').addEventListener('click', declineCall);
  $('#call-mute').addEventListener('click', toggleMute);
  $('#call-hangup').addEventListener('click', () => hangup());
  window.addEventListener('beforeunload', () => { if (call) hangup(); });
  $('#tab-chats').addEventListener('click', () => { ui.tab = 'chats'; render(); });
  $('#tab-archived').addEventListener('click', () => { ui.tab = 'archived'; render(); });
  $('#load-earlier').addEventListener('click', () => ui.open && loadEarlier(ui.open).catch(() => {}));
  $('#messages').addEventListener('scroll', (e) => {
    if (e.target.scrollTop === 0 && ui.open && !ui.noMoreHistory.has(ui.open) && !$('#load-earlier').hidden) {
      loadEarlier(ui.open).catch(() => {});
    }
  });
  $('#attach-btn').addEventListener('click', () => $('#attach-input').click());
  $('#attach-input').addEventListener('change', (e) => {
    const file = e.target.files?.[0];
    e.target.value = '';
    if (file && ui.open) sendMedia(ui.open, 'image', file, file.name);
  });
  $('#record-btn').addEventListener('click', () => toggleRecording());
  $('#message-input').addEventListener('input', (e) => sendTyping(e.target.value ? 'start' : 'stop'));
  $('#composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('#message-input');
    const body = input.value.trim();
    if (!body || !ui.open) return;
    input.value = '';
    sendTyping('stop');
    stickToBottom = true;
    sendMessage(ui.open, body);
  });
  document.addEventListener('visibilitychange', () => { if (ui.open) markRead(ui.open); });
  window.addEventListener('pagehide', () => { if (saveTimer) persist(true); });
  window.addEventListener('online', () => { if (socket && !socket.isConnected()) socket.connect(); });
  window.addEventListener('hashchange', () => {
    const m = location.hash.match(/^#\/c\/(.+)$/);
    if (m && session) openConversation(decodeURIComponent(m[1]));
  });
}

// for debugging from the console (and the browser test): the live objects
window.switchboard = {
  get socket() { return socket; },
  get state() { return state; },
  get session() { return session; },
  get call() { return call; },
  get lastCall() { return lastCall; },
  users,
};

wireUi();
if (loadSession()) startApp();
else $('#auth').hidden = false;
