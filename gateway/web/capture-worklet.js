// Runs on the audio thread: turns the microphone's float samples (any channel count, at the
// context's native rate) into mono 16-bit PCM frames of `frameSamples` and posts each, with
// its RMS level, to the page. No resampling: the gateway resamples to 16 kHz as it streams.

class DiglettCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.frameSamples = options.processorOptions.frameSamples;
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.sumSquares = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length > 0) {
      const n = channels[0].length;
      for (let i = 0; i < n; i++) {
        let x = 0;
        for (let c = 0; c < channels.length; c++) x += channels[c][i];
        x /= channels.length;
        x = x > 1 ? 1 : x < -1 ? -1 : x;
        this.sumSquares += x * x;
        this.frame[this.filled++] = x < 0 ? x * 32768 : x * 32767;
        if (this.filled === this.frameSamples) {
          const rms = Math.sqrt(this.sumSquares / this.frameSamples);
          this.port.postMessage({ pcm: this.frame.buffer, rms }, [this.frame.buffer]);
          this.frame = new Int16Array(this.frameSamples);
          this.filled = 0;
          this.sumSquares = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor('diglett-capture', DiglettCapture);
