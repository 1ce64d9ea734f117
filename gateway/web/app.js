// Diglett's web page: enroll voices from the microphone, then stream a conversation over the
// WebSocket protocol v1 and show who speaks. Plain ES modules, no build step.

import {
  ApiError, addSamples, apiKey, createProfile, deleteProfile, explain, listProfiles, setApiKey,
  streamUrl, verdictText,
} from './api.js';
import { Mic, dbfs, wavBlob } from './mic.js';

const $ = (id) => document.getElementById(id);

/// Seconds recorded for one enrollment sample.
const ENROLL_SECONDS = 5;
/// Timeline scale.
const PX_PER_SECOND = 24;
/// Window blocks kept on the timeline (30 min at the default hop); older ones are removed.
const MAX_BLOCKS = 3600;
/// Audio frames kept while the WebSocket (re)connects, about 2 s.
const MAX_QUEUED_FRAMES = 40;
/// Reconnection attempts after a dropped connection (1, 2, 4, 8, 10, 10… s apart).
const MAX_RECONNECTS = 8;
/// Close codes after which reconnecting cannot help.
const FATAL_CLOSE = new Set([1003, 1007, 1008, 1009]);

// Okabe–Ito: eight colours told apart with the common colour-vision deficiencies; speakers 9–16
// reuse them with a dotted texture. Unknown, overlap and silence are textures, not hues.
const PALETTE = ['#E69F00', '#56B4E9', '#009E73', '#F0E442', '#0072B2', '#D55E00', '#CC79A7', '#000000'];

// ---------------------------------------------------------------------------------------------
// Messages

function showError(text) {
  const el = $('error');
  el.textContent = text;
  el.hidden = !text;
}

function showNotice(text) {
  const el = $('notice');
  el.textContent = text;
  el.hidden = !text;
}

function errorText(e) {
  if (e instanceof ApiError) return explain(e.code, e.message);
  return e && e.message ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------
// Tabs (WAI-ARIA tabs pattern: arrows move between tabs)

const TABS = [
  { tab: 'tab-enroll', panel: 'screen-enroll' },
  { tab: 'tab-converse', panel: 'screen-converse' },
];

function selectTab(index) {
  TABS.forEach(({ tab, panel }, i) => {
    const on = i === index;
    $(tab).setAttribute('aria-selected', String(on));
    $(tab).tabIndex = on ? 0 : -1;
    $(panel).hidden = !on;
  });
  if (index === 1) renderPickList();
}

TABS.forEach(({ tab }, i) => {
  $(tab).addEventListener('click', () => selectTab(i));
  $(tab).addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const next = (i + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length;
    selectTab(next);
    $(TABS[next].tab).focus();
  });
});

// ---------------------------------------------------------------------------------------------
// API key

$('api-key').value = apiKey();
$('save-key').addEventListener('click', () => {
  setApiKey($('api-key').value.trim());
  showError('');
  refreshProfiles();
});
$('api-key').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') $('save-key').click();
});

// ---------------------------------------------------------------------------------------------
// Profiles

let profiles = [];

async function refreshProfiles() {
  try {
    profiles = await listProfiles();
    showError('');
  } catch (e) {
    profiles = [];
    showError(errorText(e));
    if (e instanceof ApiError && e.code === 'unauthorized') $('key-box').open = true;
  }
  renderProfiles();
  renderPickList();
}

function renderProfiles() {
  const list = $('profiles');
  list.replaceChildren();
  $('profiles-empty').hidden = profiles.length > 0;
  for (const p of profiles) {
    const li = document.createElement('li');
    li.dataset.id = p.id;
    const name = document.createElement('span');
    name.className = 'profile-name';
    name.textContent = p.name;
    const info = document.createElement('span');
    info.className = 'profile-info';
    info.textContent = `${p.speech_seconds.toFixed(1)} s of speech · ${p.samples} sample${p.samples === 1 ? '' : 's'}`;
    const more = document.createElement('button');
    more.type = 'button';
    more.textContent = 'Add 5 s';
    more.setAttribute('aria-label', `Record 5 more seconds for ${p.name}`);
    more.addEventListener('click', () => record({ id: p.id, name: p.name }));
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'danger';
    del.textContent = 'Delete';
    del.setAttribute('aria-label', `Delete ${p.name}`);
    // Two steps instead of confirm(): keyboard- and automation-friendly.
    del.addEventListener('click', async () => {
      if (del.dataset.armed !== 'yes') {
        del.dataset.armed = 'yes';
        del.textContent = 'Delete for good?';
        del.setAttribute('aria-label', `Confirm: delete ${p.name} for good`);
        return;
      }
      try {
        await deleteProfile(p.id);
        $('verdict').textContent = `${p.name} was deleted.`;
      } catch (e) {
        showError(errorText(e));
      }
      refreshProfiles();
    });
    del.addEventListener('blur', () => {
      del.dataset.armed = '';
      del.textContent = 'Delete';
      del.setAttribute('aria-label', `Delete ${p.name}`);
    });
    li.append(name, info, more, del);
    list.append(li);
  }
}

$('refresh-profiles').addEventListener('click', refreshProfiles);

// ---------------------------------------------------------------------------------------------
// Enrollment

const RING_LENGTH = 2 * Math.PI * 52;
let recording = false;

function setRing(fraction, secondsLeft) {
  $('ring-fill').style.strokeDashoffset = String(RING_LENGTH * (1 - fraction));
  $('ring-text').textContent = secondsLeft > 0 ? `${Math.ceil(secondsLeft)} s` : '✓';
  $('record-progress').setAttribute('aria-valuenow', String(Math.round(fraction * 100)));
}

function setEnrollLevel(db) {
  $('enroll-level').value = Math.max(-60, db);
  $('enroll-level-text').textContent = `${db.toFixed(0)} dBFS`;
}

/// Records ENROLL_SECONDS and enrolls it: a new profile (`target` null) or more audio for one.
async function record(target) {
  if (recording) return;
  const name = target ? target.name : $('speaker-name').value.trim();
  if (!name) {
    $('verdict').textContent = 'Type a name first.';
    $('speaker-name').focus();
    return;
  }
  recording = true;
  showError('');
  document.querySelectorAll('#screen-enroll button').forEach((b) => { b.disabled = true; });
  $('record').textContent = 'Recording…';
  $('verdict').textContent = target ? `Recording 5 more seconds of ${name}…` : `Recording ${name}… speak now.`;
  const frames = [];
  let mic = null;
  try {
    let done;
    const finished = new Promise((resolve) => { done = resolve; });
    let samples = 0;
    mic = await Mic.open(({ pcm, rms }) => {
      const frame = new Int16Array(pcm);
      frames.push(frame);
      samples += frame.length;
      const fraction = Math.min(1, samples / (ENROLL_SECONDS * mic.sampleRate));
      setRing(fraction, ENROLL_SECONDS * (1 - fraction));
      setEnrollLevel(dbfs(rms));
      if (fraction >= 1) done();
    });
    await finished;
    const rate = mic.sampleRate;
    await mic.close();
    mic = null;
    $('verdict').textContent = 'Analysing…';
    const wav = wavBlob(frames, rate);
    const r = target ? await addSamples(target.id, wav) : await createProfile(name, wav);
    const verdict = verdictText(r.verdict);
    $('verdict').textContent = `${r.name}: ${verdict} (${r.speech_seconds.toFixed(1)} s of speech in the profile)`;
    $('verdict').dataset.verdict = r.verdict;
    if (!target) $('speaker-name').value = '';
  } catch (e) {
    $('verdict').textContent = '';
    showError(errorText(e));
  } finally {
    if (mic) await mic.close();
    recording = false;
    $('record').textContent = 'Record 5 s';
    document.querySelectorAll('#screen-enroll button').forEach((b) => { b.disabled = false; });
    setEnrollLevel(-100);
    $('enroll-level-text').textContent = '— dBFS';
    await refreshProfiles();
  }
}

$('record').addEventListener('click', () => record(null));
$('speaker-name').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') record(null);
});

// ---------------------------------------------------------------------------------------------
// Conversation: choosing the speakers

function renderPickList() {
  const box = $('pick-list');
  const checked = new Set([...box.querySelectorAll('input:checked')].map((i) => i.value));
  box.replaceChildren();
  $('pick-empty').hidden = profiles.length > 0;
  profiles.forEach((p, i) => {
    const id = `pick-${i}`;
    const input = document.createElement('input');
    input.type = 'checkbox';
    input.id = id;
    input.value = p.id;
    input.checked = checked.size === 0 ? i < 16 : checked.has(p.id);
    input.addEventListener('change', limitPicks);
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = p.name;
    const row = document.createElement('div');
    row.className = 'pick-row';
    row.append(input, label);
    box.append(row);
  });
  limitPicks();
}

function limitPicks() {
  const boxes = [...$('pick-list').querySelectorAll('input')];
  const full = boxes.filter((b) => b.checked).length >= 16;
  boxes.forEach((b) => { b.disabled = !b.checked && full; });
}

// ---------------------------------------------------------------------------------------------
// Conversation: the session

let session = null;

class Session {
  constructor(speakerIds, model) {
    this.speakerIds = speakerIds;
    this.model = model;
    this.mic = null;
    this.ws = null;
    this.ready = false;
    this.queue = [];
    this.stopping = false;
    this.ended = false;
    this.reconnects = 0;
    // Stream time of earlier connections (s): results of a reconnected session continue after it.
    this.offset = 0;
    this.sentSamples = 0;
    this.sends = []; // [stream seconds sent so far, performance.now()] per frame
    this.latencies = [];
    this.turns = [];
    this.lastEnd = 0;
    this.colors = new Map();
    this.hop = 0.5;
    // Results and talk time of connections that dropped before their summary.
    this.earlierResults = 0;
    this.earlierTalk = new Map();
    this.results = 0;
  }

  async start() {
    this.mic = await Mic.open((frame) => this.onFrame(frame));
    this.connect();
  }

  connect() {
    this.ready = false;
    this.sentSamples = 0;
    this.sends = [];
    const ws = new WebSocket(streamUrl());
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({
        type: 'start',
        audio: { sample_rate: this.mic.sampleRate, encoding: 'pcm_s16le', channels: 1 },
        speakers: this.speakerIds,
        options: { model: this.model },
      }));
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      let m;
      try {
        m = JSON.parse(e.data);
      } catch {
        return;
      }
      this.onMessage(m);
    };
    ws.onclose = (e) => this.onClose(ws, e);
  }

  onFrame({ pcm }) {
    if (this.stopping) return;
    if (this.ready && this.ws.readyState === WebSocket.OPEN) {
      this.send(pcm);
    } else {
      this.queue.push(pcm);
      if (this.queue.length > MAX_QUEUED_FRAMES) this.queue.shift();
    }
  }

  send(pcm) {
    this.ws.send(pcm);
    this.sentSamples += pcm.byteLength / 2;
    this.sends.push([this.sentSamples / this.mic.sampleRate, performance.now()]);
    if (this.sends.length > 1200) this.sends.splice(0, 600);
  }

  onMessage(m) {
    switch (m.type) {
      case 'ready': {
        this.ready = true;
        this.reconnects = 0;
        this.hop = m.hop_ms / 1000;
        m.speakers.forEach((s) => {
          if (!this.colors.has(s.id)) this.colors.set(s.id, this.colors.size);
        });
        renderLegend(m.speakers, this.colors);
        showNotice('');
        setState(`Listening — ${m.speakers.length} voice${m.speakers.length === 1 ? '' : 's'}, a result every ${m.hop_ms} ms.`);
        $('stop').disabled = false;
        for (const pcm of this.queue.splice(0)) this.send(pcm);
        break;
      }
      case 'result':
        this.onResult(m);
        break;
      case 'turn':
        this.onTurn(m);
        break;
      case 'warning':
        showNotice(explain(m.code, m.message) + ` (${m.total_dropped} skipped so far)`);
        break;
      case 'error':
        showError(explain(m.code, m.message));
        break;
      case 'summary':
        this.ended = true;
        addFrames(m.timeline || [], this.offset, this.colors);
        renderSummary(m, this.offset, this.earlierResults, this.earlierTalk);
        break;
      default:
        break;
    }
  }

  onResult(r) {
    this.results += 1;
    const start = this.offset + r.start;
    const end = this.offset + r.end;
    this.lastEnd = Math.max(this.lastEnd, end);
    // A window is drawn over its newest hop: the blocks tile the timeline.
    addWindowBlock(r, Math.max(start, end - this.hop), end, this.colors);
    // The frame timeline this result decided (10 ms runs, `latency_ms` behind the window's end).
    addFrames(r.timeline || [], this.offset, this.colors);
    // Latency as the user sees it: the frame carrying the window's last sample was sent → now.
    const sent = this.sends.find(([t]) => t >= r.end - 1e-3);
    if (sent) {
      const ms = performance.now() - sent[1];
      this.latencies.push(ms);
      if (this.latencies.length > 200) this.latencies.shift();
      const sorted = [...this.latencies].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)];
      $('latency-text').textContent = `${Math.round(ms)} ms`;
      $('latency-detail').textContent = `median ${Math.round(median)} ms · in the server ${r.latency_ms.toFixed(0)} ms`;
    }
    $('volume-meter').value = Math.max(-60, r.volume);
    $('volume-text').textContent = r.volume.toFixed(0);
    $('lufs-text').textContent = r.lufs <= -70 ? '−∞' : r.lufs.toFixed(0);
    $('vad-meter').value = r.speech;
    $('vad-text').textContent = `${Math.round(r.speech * 100)}% voiced`;
    if (this.turns.length === 0) setNow(r.label, r.speaker, r.speaker_id, this.colors);
    extendTurn(this.turns, this.lastEnd);
    renderTalkTime(this.turns, this.lastEnd, this.colors);
  }

  onTurn(t) {
    const turn = { ...t, start: this.offset + t.start, end: this.offset + t.end };
    if (this.turns.length > 0) this.turns[this.turns.length - 1].until = turn.start;
    turn.until = Math.max(turn.start, this.lastEnd);
    this.turns.push(turn);
    addTurnBlock(turn, this.colors);
    setNow(t.label, t.speaker, t.speaker_id, this.colors);
    renderTalkTime(this.turns, this.lastEnd, this.colors);
  }

  onClose(ws, e) {
    if (ws !== this.ws) return;
    this.ready = false;
    const streamed = this.sentSamples / (this.mic ? this.mic.sampleRate : 1);
    if (this.stopping || this.ended) {
      this.finish(e.code === 1000 || e.code === 1001 ? '' : `Closed (${e.code}${e.reason ? `: ${e.reason}` : ''}).`);
      return;
    }
    if (FATAL_CLOSE.has(e.code)) {
      if (!$('error').textContent) showError(`The server ended the session: ${e.reason || e.code}.`);
      this.finish('Stopped because of the error above.');
      return;
    }
    if (e.code === 1000 && /idle/.test(e.reason)) {
      this.finish(`The server closed the session: ${e.reason}.`);
      return;
    }
    if (this.reconnects >= MAX_RECONNECTS) {
      showError('The connection was lost and could not be restored.');
      this.finish('Disconnected.');
      return;
    }
    // Dropped (network, server restart, 1001, 1011): a new session continues the timeline.
    this.offset += streamed;
    this.earlierResults = this.results;
    this.earlierTalk = talkTimes(this.turns, this.offset);
    this.lastEnd = Math.max(this.lastEnd, this.offset);
    const delay = Math.min(10, 2 ** this.reconnects);
    this.reconnects += 1;
    showNotice(`Connection lost (${e.code}${e.reason ? `: ${e.reason}` : ''}). Reconnecting in ${delay} s… (attempt ${this.reconnects} of ${MAX_RECONNECTS})`);
    setState('Reconnecting…');
    this.retry = setTimeout(() => {
      if (!this.stopping) this.connect();
    }, delay * 1000);
  }

  stop() {
    this.stopping = true;
    $('stop').disabled = true;
    setState('Finishing…');
    clearTimeout(this.retry);
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.ready) {
      this.ws.send(JSON.stringify({ type: 'stop' }));
      // The server answers with the remaining results, a summary and a close; do not wait forever.
      this.closeTimer = setTimeout(() => this.ws.close(), 15000);
    } else {
      if (this.ws) this.ws.close();
      this.finish('');
    }
  }

  async finish(message) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.closeTimer);
    clearTimeout(this.retry);
    if (this.mic) await this.mic.close();
    const now = $('now-speaker');
    now.textContent = '—';
    now.dataset.label = 'none';
    now.className = 'now-speaker';
    setState(message || 'Not listening.');
    showNotice('');
    $('start').disabled = false;
    $('stop').disabled = true;
    session = null;
  }
}

function setState(text) {
  $('session-state').textContent = text;
}

function speakerClass(label, speakerId, colors) {
  if (label === 'speaker' && colors.has(speakerId)) {
    const i = colors.get(speakerId);
    return `seg-speaker c${i % PALETTE.length}${i >= PALETTE.length ? ' dotted' : ''}`;
  }
  return `seg-${label}`;
}

function setNow(label, speaker, speakerId, colors) {
  const el = $('now-speaker');
  el.dataset.label = label;
  el.dataset.speaker = speaker || '';
  el.className = `now-speaker ${speakerClass(label, speakerId, colors)}`;
  el.textContent = label === 'speaker' ? speaker
    : label === 'overlap' ? `Several at once${speaker ? ` (mostly ${speaker})` : ''}`
      : label === 'unknown' ? 'Someone else'
        : 'Silence';
}

function renderLegend(speakers, colors) {
  const legend = $('legend');
  legend.replaceChildren();
  const item = (cls, text) => {
    const span = document.createElement('span');
    span.className = 'legend-item';
    const swatch = document.createElement('span');
    swatch.className = `swatch ${cls}`;
    swatch.setAttribute('aria-hidden', 'true');
    span.append(swatch, text);
    legend.append(span);
  };
  speakers.forEach((s) => item(speakerClass('speaker', s.id, colors), s.name));
  item('seg-unknown', 'someone else');
  item('seg-overlap', 'several at once');
  item('seg-silence', 'silence');
}

function place(el, start, end) {
  el.style.left = `${start * PX_PER_SECOND}px`;
  el.style.width = `${Math.max(1, (end - start) * PX_PER_SECOND)}px`;
}

function describe(label, speaker) {
  return label === 'speaker' ? speaker : label === 'unknown' ? 'someone else' : label === 'overlap' ? 'several at once' : 'silence';
}

function addWindowBlock(r, start, end, colors) {
  const lane = $('lane-windows');
  const el = document.createElement('div');
  el.className = `seg ${speakerClass(r.label, r.speaker_id, colors)}`;
  el.dataset.label = r.label;
  el.dataset.speaker = r.speaker || '';
  el.dataset.start = start.toFixed(2);
  el.dataset.end = end.toFixed(2);
  el.dataset.volume = r.volume.toFixed(1);
  el.dataset.speech = r.speech.toFixed(2);
  el.title = `${start.toFixed(1)}–${end.toFixed(1)} s: ${describe(r.label, r.speaker)}${r.score != null ? ` (score ${r.score.toFixed(2)})` : ''}`;
  place(el, start, end);
  lane.append(el);
  while (lane.childElementCount > MAX_BLOCKS) lane.firstElementChild.remove();
  growTimeline(end);
}

/// Frame-timeline runs, drawn as they come; a run continuing the previous one (same label and
/// speaker, starting where it ended) lengthens it instead of adding an element.
function addFrames(segments, offset, colors) {
  const lane = $('lane-frames');
  for (const s of segments) {
    const start = offset + s.start;
    const end = offset + s.end;
    const last = lane.lastElementChild;
    if (last && last.dataset.label === s.label && last.dataset.speaker === (s.speaker || '')
        && Math.abs(parseFloat(last.dataset.end) - start) < 0.005) {
      last.dataset.end = end.toFixed(2);
      last.title = `${last.dataset.start}–${end.toFixed(2)} s: ${describe(s.label, s.speaker)}`;
      place(last, parseFloat(last.dataset.start), end);
      continue;
    }
    const el = document.createElement('div');
    el.className = `seg frame ${speakerClass(s.label, s.speaker_id, colors)}`;
    el.dataset.label = s.label;
    el.dataset.speaker = s.speaker || '';
    el.dataset.start = start.toFixed(2);
    el.dataset.end = end.toFixed(2);
    el.title = `${start.toFixed(2)}–${end.toFixed(2)} s: ${describe(s.label, s.speaker)}`;
    place(el, start, end);
    lane.append(el);
    while (lane.childElementCount > MAX_BLOCKS) lane.firstElementChild.remove();
  }
}

function addTurnBlock(turn, colors) {
  const el = document.createElement('div');
  el.className = `seg turn ${speakerClass(turn.label, turn.speaker_id, colors)}`;
  el.dataset.label = turn.label;
  el.dataset.speaker = turn.speaker || '';
  el.textContent = turn.label === 'silence' ? '' : describe(turn.label, turn.speaker);
  el.title = `from ${turn.start.toFixed(1)} s: ${describe(turn.label, turn.speaker)}`;
  turn.el = el;
  place(el, turn.start, turn.until);
  $('lane-turns').append(el);
  while ($('lane-turns').childElementCount > MAX_BLOCKS) $('lane-turns').firstElementChild.remove();
}

function extendTurn(turns, now) {
  const last = turns[turns.length - 1];
  if (!last) return;
  last.until = Math.max(last.until, now);
  place(last.el, last.start, last.until);
  if (turns.length > 1) {
    const prev = turns[turns.length - 2];
    place(prev.el, prev.start, prev.until);
  }
}

function growTimeline(end) {
  const timeline = $('timeline');
  const width = `${Math.ceil((end + 2) * PX_PER_SECOND)}px`;
  $('lane-windows').style.width = width;
  $('lane-frames').style.width = width;
  $('lane-turns').style.width = width;
  // Follow the newest result unless the user scrolled back to look at something.
  const atEnd = timeline.scrollLeft + timeline.clientWidth >= timeline.scrollWidth - 3 * PX_PER_SECOND;
  if (atEnd) timeline.scrollLeft = timeline.scrollWidth;
}

function talkTimes(turns, now) {
  const totals = new Map();
  turns.forEach((t, i) => {
    if (t.label !== 'speaker') return;
    const until = i + 1 < turns.length ? turns[i + 1].start : Math.max(t.until, now);
    totals.set(t.speaker_id, {
      name: t.speaker,
      seconds: ((totals.get(t.speaker_id) || {}).seconds || 0) + Math.max(0, until - t.start),
    });
  });
  return totals;
}

function renderTalkTime(turns, now, colors) {
  const totals = talkTimes(turns, now);
  const all = [...totals.values()].reduce((a, t) => a + t.seconds, 0) || 1;
  const body = $('talk-body');
  body.replaceChildren();
  for (const [id, t] of totals) {
    const tr = document.createElement('tr');
    const name = document.createElement('th');
    name.scope = 'row';
    const swatch = document.createElement('span');
    swatch.className = `swatch ${speakerClass('speaker', id, colors)}`;
    swatch.setAttribute('aria-hidden', 'true');
    name.append(swatch, t.name);
    const time = document.createElement('td');
    time.className = 'num';
    time.textContent = formatSeconds(t.seconds);
    const bar = document.createElement('td');
    const meter = document.createElement('meter');
    meter.min = 0;
    meter.max = 1;
    meter.value = t.seconds / all;
    meter.setAttribute('aria-label', `${t.name}: ${Math.round((100 * t.seconds) / all)}% of talk time`);
    bar.append(meter);
    tr.append(name, time, bar);
    body.append(tr);
  }
}

function formatSeconds(s) {
  const m = Math.floor(s / 60);
  const r = s - 60 * m;
  return m > 0 ? `${m} min ${r.toFixed(0)} s` : `${r.toFixed(1)} s`;
}

/// The server's summary covers its session; after reconnections the earlier sessions' share
/// (as this page measured it) is added.
function renderSummary(m, offset, earlierResults, earlierTalk) {
  const dl = $('summary-list');
  dl.replaceChildren();
  const row = (k, v) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dl.append(dt, dd);
  };
  row('Listened', formatSeconds(offset + m.duration));
  const talk = new Map();
  for (const t of earlierTalk.values()) talk.set(t.name, (talk.get(t.name) || 0) + t.seconds);
  for (const [name, seconds] of Object.entries(m.talk_time)) talk.set(name, (talk.get(name) || 0) + seconds);
  for (const [name, seconds] of talk) row(name, formatSeconds(seconds));
  row('Results', String(earlierResults + m.windows));
  row('Skipped', m.dropped === 0 ? 'none' : `${m.dropped} (the server was busy)`);
  $('summary').hidden = false;
}

function resetConversation() {
  $('lane-windows').replaceChildren();
  $('lane-frames').replaceChildren();
  $('lane-turns').replaceChildren();
  $('talk-body').replaceChildren();
  $('summary').hidden = true;
  $('latency-text').textContent = '—';
  $('latency-detail').textContent = '';
  $('vad-meter').value = 0;
  $('vad-text').textContent = '—';
  $('volume-text').textContent = '—';
  $('lufs-text').textContent = '—';
  const now = $('now-speaker');
  now.textContent = '—';
  now.dataset.label = 'none';
  now.className = 'now-speaker';
}

$('start').addEventListener('click', async () => {
  if (session) return;
  const ids = [...$('pick-list').querySelectorAll('input:checked')].map((i) => i.value);
  if (ids.length === 0) {
    showError('Choose at least one voice (enroll one on the “Voices” screen first).');
    return;
  }
  showError('');
  resetConversation();
  $('start').disabled = true;
  setState('Opening the microphone…');
  session = new Session(ids, $('model').value);
  try {
    await session.start();
    setState('Connecting…');
  } catch (e) {
    showError(errorText(e));
    await session.finish('Not listening.');
  }
});

$('stop').addEventListener('click', () => {
  if (session) session.stop();
});

refreshProfiles();
