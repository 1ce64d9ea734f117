#!/usr/bin/env python3
"""Writes the audio_decode target's seeds in every container the decoder reads, from synthetic
tones (no recorded audio): FLAC, Ogg/Vorbis and MP3 at several rates and channel counts, and
WAV variants (8-bit, 24-bit, WAVE_FORMAT_EXTENSIBLE). Needs `pip install soundfile numpy`
(libsndfile >= 1.1 for MP3). The WAV seeds of our own writer come from
`cargo test -p diglett-fuzzing --release -- --ignored write_seeds`.
"""

import os
import sys

import numpy as np
import soundfile as sf

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "audio_decode")
os.makedirs(out, exist_ok=True)


def tone(rate, channels, seconds=0.1):
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([x * (1 - 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)


cases = [
    ("flac-16k-mono.flac", 16000, 1, "FLAC", "PCM_16"),
    ("flac-44k-stereo-24.flac", 44100, 2, "FLAC", "PCM_24"),
    ("ogg-22k-mono.ogg", 22050, 1, "OGG", "VORBIS"),
    ("ogg-48k-stereo.ogg", 48000, 2, "OGG", "VORBIS"),
    ("mp3-44k-stereo.mp3", 44100, 2, "MP3", "MPEG_LAYER_III"),
    ("mp3-16k-mono.mp3", 16000, 1, "MP3", "MPEG_LAYER_III"),
    ("wav-8k-u8.wav", 8000, 1, "WAV", "PCM_U8"),
    ("wav-32k-24.wav", 32000, 1, "WAV", "PCM_24"),
    ("wavex-48k-stereo-f32.wav", 48000, 2, "WAVEX", "FLOAT"),
]
for name, rate, channels, fmt, subtype in cases:
    path = os.path.join(out, "seed-" + name)
    sf.write(path, tone(rate, channels), rate, format=fmt, subtype=subtype)
    print(path, os.path.getsize(path), file=sys.stderr)
