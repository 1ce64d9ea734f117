#!/usr/bin/env python3
"""Independent NumPy check of the converted weights against ../shared/fixtures.

Run after convert_weights.py: it re-implements both networks from the shared README in plain
NumPy (f64) on the *converted* safetensors, so a mistake in the conversion (gate order,
transposition, a wrong tensor) shows up here before any Rust is involved.
"""
import json
import sys
import wave
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

root = Path(__file__).resolve().parents[2]
shared = root.parent / "shared"
w = root / "model" / "weights"
sig = lambda x: 1 / (1 + np.exp(-x))


def lstm_step(p, pre, x, h, c):
    g = {k: x @ p[f"{pre}.{k}.input_transform.weight"] + p[f"{pre}.{k}.input_transform.bias"]
         + h @ p[f"{pre}.{k}.hidden_transform.weight"] + p[f"{pre}.{k}.hidden_transform.bias"]
         for k in ("input_gate", "forget_gate", "cell_gate", "output_gate")}
    c = sig(g["forget_gate"]) * c + sig(g["input_gate"]) * np.tanh(g["cell_gate"])
    return sig(g["output_gate"]) * np.tanh(c), c


def read_wav(p):
    with wave.open(str(p)) as f:
        return np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float64) / 32768.0


def ge2e(p, mel):  # mel [160, 40]
    x = mel
    for layer in range(3):
        h = np.zeros(256); c = np.zeros(256); hs = []
        for t in range(x.shape[0]):
            h, c = lstm_step(p, f"lstm.{layer}", x[t], h, c)
            hs.append(h)
        x = np.stack(hs)
    e = np.maximum(x[-1] @ p["linear.weight"] + p["linear.bias"], 0)
    return e / np.linalg.norm(e)


def mel_spec(wav):
    import math
    n_fft, hop = 400, 160
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    y = np.pad(wav, (200, 200))
    n = 1 + (len(y) - n_fft) // hop
    frames = np.stack([y[i * hop:i * hop + n_fft] * win for i in range(n)])
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    # Slaney mel scale and area normalisation (librosa.filters.mel defaults)
    def hz2mel(f):
        f = np.asarray(f, float); m = f / (200.0 / 3)
        return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-10) / 1000) / (math.log(6.4) / 27), m)
    def mel2hz(m):
        m = np.asarray(m, float); f = m * 200.0 / 3
        return np.where(m >= 15, 1000 * np.exp((math.log(6.4) / 27) * (m - 15)), f)
    mels = mel2hz(np.linspace(hz2mel(0), hz2mel(8000), 42))
    fft_f = np.linspace(0, 8000, 201)
    fb = np.zeros((40, 201))
    for i in range(40):
        lo = (fft_f - mels[i]) / (mels[i + 1] - mels[i])
        hi = (mels[i + 2] - fft_f) / (mels[i + 2] - mels[i + 1])
        fb[i] = np.maximum(0, np.minimum(lo, hi)) * 2.0 / (mels[i + 2] - mels[i])
    return spec @ fb.T


def silero(p, wav):
    probs = []
    ctx = np.zeros(64); h = np.zeros(128); c = np.zeros(128)
    basis = p["stft.weight"][:, 0, :]
    for i in range(len(wav) // 512):
        x = np.concatenate([ctx, wav[i * 512:(i + 1) * 512]])
        ctx = x[-64:]
        x = np.concatenate([x, x[-2:-66:-1]])  # reflect pad 64 on the right
        frames = np.stack([x[j * 128:j * 128 + 256] for j in range((640 - 256) // 128 + 1)], 1)
        z = basis @ frames
        z = np.sqrt(z[:129] ** 2 + z[129:] ** 2)
        for k, s in enumerate((1, 2, 2, 1)):
            wt, b = p[f"encoder.{k}.weight"], p[f"encoder.{k}.bias"]
            zp = np.pad(z, ((0, 0), (1, 1)))
            n = (zp.shape[1] - 3) // s + 1
            z = np.maximum(np.stack([np.einsum("oik,ik->o", wt, zp[:, t * s:t * s + 3]) for t in range(n)], 1) + b[:, None], 0)
        h, c = lstm_step(p, "rnn", z[:, -1], h, c)
        o = p["decoder.weight"][0, :, 0] @ np.maximum(h, 0) + p["decoder.bias"][0]
        probs.append(sig(o))
    return np.array(probs)


def main():
    ge = {k: v.astype(np.float64) for k, v in load_file(w / "ge2e.safetensors").items()}
    sv = {k: v.astype(np.float64) for k, v in load_file(w / "silero_vad_v6.safetensors").items()}
    ok = True
    for fx in sorted((shared / "fixtures/vad").glob("*.json")):
        ref = np.array(json.loads(fx.read_text())["probabilities"])
        got = silero(sv, read_wav(shared / "fixtures/audio" / (fx.stem + ".wav")))
        err = np.abs(got[:len(ref)] - ref).max()
        print(f"vad {fx.stem}: {len(got)} vs {len(ref)} chunks, max abs err {err:.2e}")
        ok &= err < 1e-3 and len(got) == len(ref)
    for fx in sorted((shared / "fixtures/encoder").glob("*.json")):
        d = json.loads(fx.read_text())
        wav = read_wav(shared / "fixtures/audio" / (fx.stem + ".wav"))
        dbfs = 10 * np.log10(np.mean((wav * 32767) ** 2)) - 20 * np.log10(32767)
        gain = 10 ** ((-30 - dbfs) / 20)
        if gain > 1: wav = wav * gain
        mel = mel_spec(wav)
        rel = np.abs(mel[:5] - np.array(d["mel_frames_0_to_4"])).max() / np.abs(d["mel_frames_0_to_4"]).max()
        e = ge2e(ge, mel[:160])
        cos = e @ np.array(d["window_embedding_first_160_frames"])
        print(f"ge2e {fx.stem}: mel frames {len(mel)} vs {d['mel_n_frames']}, mel rel err {rel:.1e}, window cosine {cos:.8f}")
        ok &= cos > 0.9999
    sys.exit(0 if ok else 1)


main()
