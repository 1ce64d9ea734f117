// The microphone: getUserMedia → AudioWorklet → 50 ms frames of mono 16-bit PCM at the
// browser's native rate, and a WAV encoder for enrollment recordings.

/// Frames per second posted by the worklet: 50 ms each. At rates other than 16 kHz the gateway's
/// resampler needs ~13 ms of audio beyond a window's end before the window is complete, and
/// window ends fall on frame boundaries, so a window waits for the next frame: 50 ms frames keep
/// that wait at 50 ms (100 ms frames measured ~115 ms page-side latency for 13 ms in the server).
const FRAMES_PER_SECOND = 20;

export class Mic {
  /// Opens the microphone. `onFrame({pcm: ArrayBuffer, rms: number})` gets every frame.
  static async open(onFrame) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error('This browser cannot record audio here (a secure https:// or localhost page is needed).');
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          // Speaker recognition wants the voice as it is: no processing that reshapes it.
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
        },
      });
    } catch (e) {
      const why = e.name === 'NotAllowedError'
        ? 'Microphone access was refused. Allow it in the browser’s site settings and try again.'
        : e.name === 'NotFoundError'
          ? 'No microphone was found.'
          : `The microphone could not be opened (${e.message}).`;
      throw new Error(why);
    }
    const ctx = new AudioContext();
    try {
      await ctx.audioWorklet.addModule(new URL('./capture-worklet.js', import.meta.url));
      const source = ctx.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(ctx, 'diglett-capture', {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: { frameSamples: Math.round(ctx.sampleRate / FRAMES_PER_SECOND) },
      });
      // The worklet writes no output; a muted path to the destination keeps it scheduled.
      const mute = ctx.createGain();
      mute.gain.value = 0;
      source.connect(node).connect(mute).connect(ctx.destination);
      node.port.onmessage = (e) => onFrame(e.data);
      await ctx.resume();
      return new Mic(stream, ctx, node);
    } catch (e) {
      stream.getTracks().forEach((t) => t.stop());
      await ctx.close();
      throw e;
    }
  }

  constructor(stream, ctx, node) {
    this.stream = stream;
    this.ctx = ctx;
    this.node = node;
  }

  get sampleRate() {
    return this.ctx.sampleRate;
  }

  async close() {
    this.node.port.onmessage = null;
    this.stream.getTracks().forEach((t) => t.stop());
    await this.ctx.close();
  }
}

/// dBFS of an RMS level (floored at −100 like the server).
export function dbfs(rms) {
  return rms > 0 ? Math.max(-100, 20 * Math.log10(rms)) : -100;
}

/// A 16-bit mono PCM WAV file from Int16 frames.
export function wavBlob(frames, sampleRate) {
  const samples = frames.reduce((n, f) => n + f.length, 0);
  const header = new DataView(new ArrayBuffer(44));
  const text = (at, s) => [...s].forEach((ch, i) => header.setUint8(at + i, ch.charCodeAt(0)));
  text(0, 'RIFF');
  header.setUint32(4, 36 + samples * 2, true);
  text(8, 'WAVE');
  text(12, 'fmt ');
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, sampleRate, true);
  header.setUint32(28, sampleRate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  text(36, 'data');
  header.setUint32(40, samples * 2, true);
  // Int16Array is little-endian on every platform browsers run on.
  return new Blob([header, ...frames], { type: 'audio/wav' });
}
