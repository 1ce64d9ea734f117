// The REST half of the page: profiles and enrollment, with the API key if one is set.
// Every failure becomes an ApiError carrying the server's `{"error": {"code", "message"}}`.

const KEY_STORAGE = 'diglett.apiKey';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || '';
  } catch {
    return '';
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage can be disabled; the key then lasts until the page is reloaded.
  }
  sessionKey = key;
}

let sessionKey = apiKey();

async function call(method, path, body) {
  const headers = {};
  if (sessionKey) headers.Authorization = `Bearer ${sessionKey}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `The server cannot be reached (${e.message}).`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy's error page, say): reported below with the status.
  }
  if (!response.ok) {
    const err = json && json.error;
    throw new ApiError(
      response.status,
      (err && err.code) || 'http_error',
      (err && err.message) || `The server answered ${response.status} ${response.statusText}.`,
    );
  }
  return json;
}

export function listProfiles() {
  return call('GET', '/v1/speakers').then((j) => j.speakers || []);
}

export function createProfile(name, wav) {
  const form = new FormData();
  form.append('name', name);
  form.append('file', wav, 'recording.wav');
  return call('POST', '/v1/speakers', form);
}

export function addSamples(id, wav) {
  const form = new FormData();
  form.append('file', wav, 'recording.wav');
  return call('POST', `/v1/speakers/${encodeURIComponent(id)}/samples`, form);
}

export function deleteProfile(id) {
  return call('DELETE', `/v1/speakers/${encodeURIComponent(id)}`);
}

/// The streaming URL on this origin, with the key as `token` (browsers cannot set headers on a
/// WebSocket).
export function streamUrl() {
  const url = new URL('/v1/stream', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (sessionKey) url.searchParams.set('token', sessionKey);
  return url.toString();
}

/// What a person should read for an error code from REST or from a WebSocket `error` frame.
export function explain(code, message) {
  const words = {
    unauthorized: 'This server needs an API key: open “API key” at the top and enter yours.',
    unreachable: 'The server cannot be reached. Is it running?',
    no_workers: 'No worker is running to analyse audio right now. Try again in a moment.',
    worker_timeout: 'The analysis took too long. Try again.',
    store_unavailable: 'Voice profiles cannot be stored or read right now (the database is down).',
    no_voice: 'No voice was heard in the recording. Check the microphone and speak closer to it.',
    audio_too_long: 'The recording is too long.',
    payload_too_large: 'The recording is too large.',
    unknown_profile: 'One of the chosen voices no longer exists. Refresh the list of voices.',
    model_unavailable: 'One of the chosen voices was enrolled before CAM++ was installed: add a sample to it on the “Voices” screen, or choose GE2E.',
    unsupported_format: 'The server cannot take this microphone’s audio format.',
    too_many_sessions: 'The server is busy (too many conversations). Try again later.',
    shutting_down: 'The server is restarting.',
    overloaded: 'The server is busy: some moments were skipped.',
    timeout: 'Some moments got no answer in time and were skipped.',
  };
  return words[code] ? `${words[code]} (${message})` : message;
}

/// Enrollment verdicts in words.
export function verdictText(verdict) {
  switch (verdict) {
    case 'ok':
      return 'Good sample — this voice is ready to use.';
    case 'too_short':
      return 'Not enough speech yet: speak a little longer (add another 5 s to this voice).';
    case 'no_voice':
      return 'No voice was heard: check the microphone and speak closer to it.';
    case 'clipped':
      return 'Too loud — the sound distorted. Move back a little or turn the input level down, then add another sample.';
    case 'too_quiet':
      return 'Too quiet: speak up or move closer to the microphone, then add another sample.';
    default:
      return `Verdict: ${verdict}`;
  }
}
