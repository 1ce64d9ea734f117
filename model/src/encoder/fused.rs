//! The production CPU path of the speaker encoder: the same network as
//! [`SpeakerEncoder`](super::SpeakerEncoder), with the LSTM recurrence fused into one kernel per
//! layer (see `shared/PERF-NOTES.md` for the measurements behind each choice).
//!
//! Per layer:
//! 1. the input-to-hidden half of all 160 steps is one matrix product `[batch·160, d_in] ×
//!    [d_in, 1024]` (plus both biases), done before the step loop;
//! 2. each step multiplies the hidden state `[batch, 256]` by the pre-packed `W_hh` and applies
//!    the gate non-linearities and the cell update to each output tile while it is still in
//!    registers, so the 1 024 gate pre-activations never go to memory.
//!
//! Both products use one register-blocked micro-kernel over weights packed once at load time in
//! *panels*: a panel holds, for `U` consecutive hidden units (`U` = the SIMD width, 16 with
//! AVX-512), the four gates' columns (i, f, g, o), `k`-major. One panel therefore yields, after
//! the reduction over `k`, exactly the four gate vectors needed to update those `U` units.
//!
//! SIMD is safe code through `pulp`: the kernel is generic over [`pulp::Simd`] and dispatched at
//! run time (AVX-512, AVX2+FMA, or a scalar fallback), so binaries run on any x86-64 CPU.

use pulp::{Arch, Simd, WithSimd};

/// LSTM gates per hidden unit (input, forget, cell candidate, output), torch's order.
const GATES: usize = 4;

/// Panel width of the half-precision `W_hh` path: one AVX-512 vector of `f32`.
const F16_LANES: usize = 16;

/// One LSTM layer's weights, packed for the micro-kernel.
#[derive(Debug, Clone)]
struct PackedLstm {
    d_in: usize,
    /// `W_ih` in panels: `[hidden / U][d_in][GATES][U]`.
    w_ih: Vec<f32>,
    /// `W_hh` in panels: `[hidden / U][hidden][GATES][U]`.
    w_hh: HiddenWeights,
    /// `b_ih + b_hh` in panel order `[hidden / U][GATES][U]`; added once with the input product.
    bias: Vec<f32>,
}

/// A layer's packed `W_hh`, in the precision its kernel reads.
#[derive(Debug, Clone)]
enum HiddenWeights {
    F32(Vec<f32>),
    /// IEEE half precision bits, for [`Kernel::Avx512F16`]: the recurrence streams all of `W_hh`
    /// once per step, and at 512 KiB instead of 1 MiB it stays in a Zen 4/5 core's 1 MiB L2
    /// instead of coming from L3 (`shared/PERF-NOTES.md`; measured 4.1 → 2.7 ms per window at
    /// batch 1).
    F16(Vec<[[u16; F16_LANES]; GATES]>),
}

/// Weights of one LSTM gate in burn's layout, as extracted from the reference module.
#[derive(Debug, Clone)]
pub(crate) struct GateWeights {
    /// `[d_in, hidden]`, row-major.
    pub w_ih: Vec<f32>,
    /// `[hidden, hidden]`, row-major.
    pub w_hh: Vec<f32>,
    pub b_ih: Vec<f32>,
    pub b_hh: Vec<f32>,
}

/// The kernel a [`FusedEncoder`] runs. [`FusedEncoder::from_module`] picks the fastest one the
/// CPU supports, at run time; [`FusedEncoder::with_kernel`] forces one (tests compare them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 with `W_hh` stored in half precision and widened in registers: the recurrence
    /// streams half the bytes per step (1 − cosine ≈ 1e-6 against the f32 network).
    Avx512F16,
    /// AVX-512, all weights in `f32`.
    Avx512,
    /// AVX2 + FMA (x86-64-v3), all weights in `f32`.
    Avx2,
    /// Portable code through `pulp`'s generic SIMD: NEON on aarch64, scalar on an x86-64 CPU
    /// without AVX2.
    Generic,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Self {
        [Self::Avx512F16, Self::Avx2]
            .into_iter()
            .find(|k| k.arch().is_some())
            .unwrap_or(Self::Generic)
    }

    /// `pulp`'s dispatch target for this kernel, if the CPU has the instructions.
    fn arch(self) -> Option<Arch> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512F16 | Self::Avx512 => pulp::x86::V4::try_new().map(Arch::V4),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => pulp::x86::V3::try_new().map(Arch::V3),
            #[cfg(target_arch = "x86_64")]
            Self::Generic => Some(Arch::Scalar),
            #[cfg(not(target_arch = "x86_64"))]
            Self::Generic => Some(Arch::new()),
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }
}

/// The fused, single-threaded CPU implementation of the speaker encoder.
///
/// Built from the reference burn module by [`FusedEncoder::from_module`]. Immutable after
/// construction, hence `Send + Sync`: any number of threads may call [`FusedEncoder::forward`]
/// at once, each call using only its own scratch memory.
#[derive(Debug, Clone)]
pub struct FusedEncoder {
    kernel: Kernel,
    /// The instruction set of `kernel`; the panels are packed for its SIMD width.
    arch: Arch,
    /// Hidden units per panel (the `f32` SIMD width of `arch`).
    lanes: usize,
    n_mels: usize,
    hidden: usize,
    embedding: usize,
    layers: Vec<PackedLstm>,
    /// Final projection `[hidden, embedding]`, row-major (burn's layout).
    linear_w: Vec<f32>,
    linear_b: Vec<f32>,
}

/// Reports the `f32` SIMD width of the dispatched instruction set.
struct Lanes;

impl WithSimd for Lanes {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) -> usize {
        S::F32_LANES
    }
}

impl FusedEncoder {
    /// Packs the weights for `kernel`: `layers[l]` holds the four gates (i, f, g, o) of LSTM
    /// layer `l`; `linear_w` is `[hidden, embedding]` row-major. `None` if the CPU lacks the
    /// kernel's instructions.
    pub(crate) fn new(
        kernel: Kernel,
        n_mels: usize,
        hidden: usize,
        layers: &[[GateWeights; GATES]],
        linear_w: Vec<f32>,
        linear_b: Vec<f32>,
    ) -> Option<Self> {
        let (kernel, arch) = match kernel.arch() {
            Some(arch) if hidden.is_multiple_of(arch.dispatch(Lanes)) => (kernel, arch),
            // Panels must tile the hidden units exactly; the scalar kernel always does.
            Some(_) => (Kernel::Generic, Arch::Scalar),
            None => return None,
        };
        let lanes = arch.dispatch(Lanes);
        let half = kernel == Kernel::Avx512F16;
        let embedding = linear_b.len();
        assert_eq!(linear_w.len(), hidden * embedding, "linear weight shape");
        let layers = layers
            .iter()
            .enumerate()
            .map(|(l, gates)| {
                let d_in = if l == 0 { n_mels } else { hidden };
                pack_layer(gates, d_in, hidden, lanes, half)
            })
            .collect();
        Some(Self {
            kernel,
            arch,
            lanes,
            n_mels,
            hidden,
            embedding,
            layers,
            linear_w,
            linear_b,
        })
    }

    /// The kernel this encoder runs.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Length of one embedding (256).
    pub fn embedding_dim(&self) -> usize {
        self.embedding
    }

    /// Embeds `batch` windows of `frames` mel frames each.
    ///
    /// `mels` is row-major `[batch, frames, n_mels]`; returns row-major `[batch, embedding]`,
    /// each row L2-normalised. Runs on the calling thread only.
    ///
    /// # Panics
    /// If `mels.len() != batch * frames * n_mels`.
    pub fn forward(&self, mels: &[f32], batch: usize, frames: usize) -> Vec<f32> {
        assert_eq!(
            mels.len(),
            batch * frames * self.n_mels,
            "mels must be [batch, frames, n_mels]"
        );
        if batch == 0 {
            return Vec::new();
        }
        let hidden_state = if frames == 0 {
            vec![0.0; batch * self.hidden]
        } else {
            let job = Recurrence {
                enc: self,
                mels,
                batch,
                frames,
            };
            match self.arch {
                #[cfg(target_arch = "x86_64")]
                Arch::V4(simd)
                    if self
                        .layers
                        .iter()
                        .all(|l| matches!(l.w_hh, HiddenWeights::F16(_))) =>
                {
                    simd.vectorize(RecurrenceF16 { job, simd })
                }
                arch => arch.dispatch(job),
            }
        };
        self.head(&hidden_state, batch)
    }

    /// `linear → ReLU → L2 norm` on the last layer's final hidden state `[batch, hidden]`.
    fn head(&self, hidden_state: &[f32], batch: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; batch * self.embedding];
        for (h, e) in hidden_state
            .chunks_exact(self.hidden)
            .zip(out.chunks_exact_mut(self.embedding))
        {
            e.copy_from_slice(&self.linear_b);
            for (&hk, w_row) in h.iter().zip(self.linear_w.chunks_exact(self.embedding)) {
                for (ej, &wj) in e.iter_mut().zip(w_row) {
                    *ej += hk * wj;
                }
            }
            let mut norm2 = 0.0f32;
            for ej in e.iter_mut() {
                *ej = ej.max(0.0);
                norm2 += *ej * *ej;
            }
            // Resemblyzer divides by the norm with no epsilon; the floor only keeps an all-zero
            // ReLU output (never seen with the trained weights) at zero instead of NaN.
            let inv = 1.0 / norm2.sqrt().max(f32::MIN_POSITIVE);
            for ej in e.iter_mut() {
                *ej *= inv;
            }
        }
        out
    }
}

/// Packs one layer's gates into the panel layout described in the module docs.
fn pack_layer(
    gates: &[GateWeights; GATES],
    d_in: usize,
    hidden: usize,
    lanes: usize,
    half: bool,
) -> PackedLstm {
    let panels = hidden / lanes;
    let pack = |rows: usize, pick: &dyn Fn(&GateWeights) -> &[f32]| {
        let mut out = Vec::with_capacity(panels * rows * GATES * lanes);
        for p in 0..panels {
            for k in 0..rows {
                for gate in gates {
                    let w = pick(gate);
                    assert_eq!(w.len(), rows * hidden, "gate weight shape");
                    let start = k * hidden + p * lanes;
                    out.extend_from_slice(&w[start..start + lanes]);
                }
            }
        }
        out
    };
    let w_ih = pack(d_in, &|g| &g.w_ih);
    let w_hh = pack(hidden, &|g| &g.w_hh);
    let mut bias = Vec::with_capacity(hidden * GATES);
    for p in 0..panels {
        for gate in gates {
            assert_eq!(gate.b_ih.len(), hidden, "gate bias shape");
            assert_eq!(gate.b_hh.len(), hidden, "gate bias shape");
            let units = p * lanes..(p + 1) * lanes;
            bias.extend(
                gate.b_ih[units.clone()]
                    .iter()
                    .zip(&gate.b_hh[units])
                    .map(|(a, b)| a + b),
            );
        }
    }
    let w_hh = if half && lanes == F16_LANES {
        HiddenWeights::F16(
            w_hh.as_chunks::<{ GATES * F16_LANES }>()
                .0
                .iter()
                .map(|row| {
                    std::array::from_fn(|q| {
                        std::array::from_fn(|l| {
                            half::f16::from_f32(row[q * F16_LANES + l]).to_bits()
                        })
                    })
                })
                .collect(),
        )
    } else {
        HiddenWeights::F32(w_hh)
    };
    PackedLstm {
        d_in,
        w_ih,
        w_hh,
        bias,
    }
}

/// The three LSTM layers over a batch; returns the last layer's final hidden state
/// `[batch, hidden]`.
struct Recurrence<'a> {
    enc: &'a FusedEncoder,
    mels: &'a [f32],
    batch: usize,
    frames: usize,
}

impl WithSimd for Recurrence<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
        let hidden = self.enc.hidden;
        let panels: Vec<F32Panels<'_, S>> = self
            .enc
            .layers
            .iter()
            .map(|l| F32Panels {
                w: match &l.w_hh {
                    HiddenWeights::F32(w) => S::as_simd_f32s(w).0.as_chunks::<GATES>().0,
                    HiddenWeights::F16(_) => unreachable!("f16 weights run RecurrenceF16"),
                },
                k: hidden,
            })
            .collect();
        self.run(simd, &panels)
    }
}

/// [`Recurrence`] with the half-precision `W_hh` (AVX-512 only).
#[cfg(target_arch = "x86_64")]
struct RecurrenceF16<'a> {
    job: Recurrence<'a>,
    simd: pulp::x86::V4,
}

#[cfg(target_arch = "x86_64")]
impl pulp::NullaryFnOnce for RecurrenceF16<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn call(self) -> Vec<f32> {
        let hidden = self.job.enc.hidden;
        let panels: Vec<F16Panels<'_>> = self
            .job
            .enc
            .layers
            .iter()
            .map(|l| F16Panels {
                w: match &l.w_hh {
                    HiddenWeights::F16(w) => w,
                    HiddenWeights::F32(_) => unreachable!("f32 weights run Recurrence"),
                },
                k: hidden,
            })
            .collect();
        self.job.run(self.simd, &panels)
    }
}

impl Recurrence<'_> {
    /// The layers in sequence; `w_hh[l]` is layer `l`'s recurrent weights.
    #[inline(always)]
    fn run<S: Simd, H: Panels<S>>(self, simd: S, w_hh: &[H]) -> Vec<f32> {
        let Self {
            enc,
            mels,
            batch,
            frames,
        } = self;
        assert_eq!(
            S::F32_LANES,
            enc.lanes,
            "weights packed for another SIMD width"
        );
        let hidden = enc.hidden;
        let rows = batch * frames;
        // Scratch: gate inputs `[batch, frames, GATES·hidden]` (panel order), the layer output
        // sequence `[batch, frames, hidden]`, and the recurrent state.
        let mut xproj = vec![0.0f32; rows * GATES * hidden];
        let mut seq = vec![0.0f32; rows * hidden];
        let mut h_prev = vec![0.0f32; batch * hidden];
        let mut h_next = vec![0.0f32; batch * hidden];
        let mut c = vec![0.0f32; batch * hidden];
        let mut packed = Vec::new();
        let step_tile_rows = max_tile_rows::<S>(two_panels(batch));
        let n_layers = enc.layers.len();
        for (l, (layer, &w_hh)) in enc.layers.iter().zip(w_hh).enumerate() {
            {
                let input: &[f32] = if l == 0 { mels } else { &seq };
                input_projection(simd, layer, input, rows, &mut packed, &mut xproj);
            }
            h_prev.fill(0.0);
            c.fill(0.0);
            let keep_sequence = l + 1 < n_layers;
            for t in 0..frames {
                let h_packed = if t == 0 {
                    None
                } else {
                    pack_rows(&h_prev, hidden, batch, step_tile_rows, &mut packed);
                    Some(&packed[..])
                };
                lstm_step(
                    simd,
                    w_hh,
                    hidden,
                    &xproj,
                    frames,
                    t,
                    batch,
                    h_packed,
                    &mut h_next,
                    &mut c,
                );
                if keep_sequence {
                    for (b, h) in h_next.chunks_exact(hidden).enumerate() {
                        let at = (b * frames + t) * hidden;
                        seq[at..at + hidden].copy_from_slice(h);
                    }
                }
                std::mem::swap(&mut h_prev, &mut h_next);
            }
        }
        h_prev
    }
}

/// One weight panel: `k` rows of `GATES` vectors (one per gate, `U` units each).
trait Panel<S: Simd>: Copy {
    /// The panel cut to its first `k` rows (lets the optimiser drop bounds checks).
    fn prefix(self, k: usize) -> Self;
    /// Row `k`, widened to `f32` vectors.
    fn row(self, simd: S, k: usize) -> [S::f32s; GATES];
}

/// A layer's panels.
trait Panels<S: Simd>: Copy {
    type Panel: Panel<S>;
    fn panel(self, p: usize) -> Self::Panel;
}

#[derive(Clone, Copy)]
struct F32Panel<'a, S: Simd>(&'a [[S::f32s; GATES]]);

impl<S: Simd> Panel<S> for F32Panel<'_, S> {
    #[inline(always)]
    fn prefix(self, k: usize) -> Self {
        Self(&self.0[..k])
    }

    #[inline(always)]
    fn row(self, _simd: S, k: usize) -> [S::f32s; GATES] {
        self.0[k]
    }
}

#[derive(Clone, Copy)]
struct F32Panels<'a, S: Simd> {
    /// All panels, `[panel][k]` rows.
    w: &'a [[S::f32s; GATES]],
    /// Rows per panel.
    k: usize,
}

impl<'a, S: Simd> Panels<S> for F32Panels<'a, S> {
    type Panel = F32Panel<'a, S>;

    #[inline(always)]
    fn panel(self, p: usize) -> F32Panel<'a, S> {
        F32Panel(&self.w[p * self.k..(p + 1) * self.k])
    }
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct F16Panel<'a>(&'a [[[u16; F16_LANES]; GATES]]);

#[cfg(target_arch = "x86_64")]
impl Panel<pulp::x86::V4> for F16Panel<'_> {
    #[inline(always)]
    fn prefix(self, k: usize) -> Self {
        Self(&self.0[..k])
    }

    #[inline(always)]
    fn row(self, simd: pulp::x86::V4, k: usize) -> [pulp::f32x16; GATES] {
        let row = &self.0[k];
        std::array::from_fn(|q| {
            let half: std::arch::x86_64::__m256i = pulp::cast(row[q]);
            pulp::cast(simd.avx512f._mm512_cvtph_ps(half))
        })
    }
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct F16Panels<'a> {
    w: &'a [[[u16; F16_LANES]; GATES]],
    k: usize,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Panels<pulp::x86::V4> for F16Panels<'a> {
    type Panel = F16Panel<'a>;

    #[inline(always)]
    fn panel(self, p: usize) -> F16Panel<'a> {
        F16Panel(&self.w[p * self.k..(p + 1) * self.k])
    }
}

/// Register tiling for this instruction set: the most rows one tile takes with one panel and
/// with two panels, so that the accumulators (`rows × panels × GATES` vectors) plus the weight
/// row and a broadcast fit the register file (AVX-512: 24 or 24 of 32; AVX2: 8 or 8 of 16).
#[inline(always)]
fn max_tile_rows<S: Simd>(two_panels: bool) -> usize {
    match (S::REGISTER_COUNT >= 32, two_panels) {
        (true, false) => 6,
        (true, true) => 3,
        (false, false) => 2,
        (false, true) => 1,
    }
}

/// Copies `rows` rows of length `k` from `src` (row-major) into `dst` tile by tile (tiles of
/// `max` rows, then the remainder): tile `[r0, r0 + m)` becomes the `k × m` column-interleaved
/// block `dst[r0·k + kk·m + r] = src[(r0 + r)·k + kk]`. The micro-kernel then reads one
/// contiguous `[f32; m]` per `kk` (packing the left operand, as BLAS does).
fn pack_rows(src: &[f32], k: usize, rows: usize, max: usize, dst: &mut Vec<f32>) {
    dst.clear();
    dst.resize(rows * k, 0.0);
    let mut r0 = 0;
    while r0 < rows {
        let m = max.min(rows - r0);
        let block = &mut dst[r0 * k..(r0 + m) * k];
        for r in 0..m {
            let row = &src[(r0 + r) * k..(r0 + r + 1) * k];
            for (kk, &v) in row.iter().enumerate() {
                block[kk * m + r] = v;
            }
        }
        r0 += m;
    }
}

/// Runs `$body` with `$mr` bound to the const row count `m` (1..=6) and `$np` to the const panel
/// count `np` (1 or 2), i.e. picks the monomorphised micro-kernel for a tile.
///
/// The twelve arms are alike on purpose: each binds different constants, so that the compiler
/// unrolls a register tile of exactly that size (a loop over sizes would not be const).
macro_rules! with_tile {
    ($m:expr, $np:expr, |$mr:ident, $npi:ident| $body:block) => {
        match ($m, $np) {
            (1, 1) => {
                const $mr: usize = 1;
                const $npi: usize = 1;
                $body
            }
            (2, 1) => {
                const $mr: usize = 2;
                const $npi: usize = 1;
                $body
            }
            (3, 1) => {
                const $mr: usize = 3;
                const $npi: usize = 1;
                $body
            }
            (4, 1) => {
                const $mr: usize = 4;
                const $npi: usize = 1;
                $body
            }
            (5, 1) => {
                const $mr: usize = 5;
                const $npi: usize = 1;
                $body
            }
            (6, 1) => {
                const $mr: usize = 6;
                const $npi: usize = 1;
                $body
            }
            (1, 2) => {
                const $mr: usize = 1;
                const $npi: usize = 2;
                $body
            }
            (2, 2) => {
                const $mr: usize = 2;
                const $npi: usize = 2;
                $body
            }
            (3, 2) => {
                const $mr: usize = 3;
                const $npi: usize = 2;
                $body
            }
            shape => unreachable!("no micro-kernel for tile {shape:?}"),
        }
    };
}

/// `xproj[r] = input[r] · W_ih + b` for all `rows` rows, in panel order.
#[inline(always)]
fn input_projection<S: Simd>(
    simd: S,
    layer: &PackedLstm,
    input: &[f32],
    rows: usize,
    packed: &mut Vec<f32>,
    xproj: &mut [f32],
) {
    let d_in = layer.d_in;
    let lanes = S::F32_LANES;
    let panel_len = d_in * GATES * lanes;
    let n_panels = layer.bias.len() / (GATES * lanes);
    let vrow = n_panels * GATES;
    let max = max_tile_rows::<S>(false);
    pack_rows(input, d_in, rows, max, packed);
    let (xproj_v, _) = S::as_mut_simd_f32s(xproj);
    let (bias_v, _) = S::as_simd_f32s(&layer.bias);
    // Panel-outer: one panel of `W_ih` (`d_in × 64` floats) stays in L1/L2 while every row
    // tile streams past it.
    for p in 0..n_panels {
        let w = F32Panel::<S>(
            S::as_simd_f32s(&layer.w_ih[p * panel_len..(p + 1) * panel_len])
                .0
                .as_chunks::<GATES>()
                .0,
        );
        let bias = &bias_v[p * GATES..(p + 1) * GATES];
        let mut r0 = 0;
        while r0 < rows {
            let m = max.min(rows - r0);
            let a = &packed[r0 * d_in..(r0 + m) * d_in];
            with_tile!(m, 1, |MR, NP| {
                let w: [F32Panel<'_, S>; NP] = std::array::from_fn(|_| w);
                let acc = matmul_tile::<S, _, MR, NP>(simd, a.as_chunks::<MR>().0, w);
                for (r, acc_r) in acc.iter().enumerate() {
                    let out = &mut xproj_v[(r0 + r) * vrow + p * GATES..][..GATES];
                    for q in 0..GATES {
                        out[q] = simd.add_f32s(acc_r[0][q], bias[q]);
                    }
                }
            });
            r0 += m;
        }
    }
}

/// One time step `t` of one layer for the whole batch: gates = `xproj[:, t] + h_prev · W_hh`,
/// then `c = σ(f)·c + σ(i)·tanh(g)`, `h_next = σ(o)·tanh(c)`. `h_packed` is `h_prev` packed by
/// [`pack_rows`] with `max_tile_rows(two_panels(batch))`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn lstm_step<S: Simd, H: Panels<S>>(
    simd: S,
    w_hh: H,
    hidden: usize,
    xproj: &[f32],
    frames: usize,
    t: usize,
    batch: usize,
    h_packed: Option<&[f32]>,
    h_next: &mut [f32],
    c: &mut [f32],
) {
    let n_panels = hidden / S::F32_LANES;
    let (xproj_v, _) = S::as_simd_f32s(xproj);
    let (h_next_v, _) = S::as_mut_simd_f32s(h_next);
    let (c_v, _) = S::as_mut_simd_f32s(c);
    let vrow = n_panels * GATES;
    // (A macro rather than a closure: a closure is compiled without the dispatched target
    // features when the optimiser declines to inline it.)
    macro_rules! update {
        ($b:expr, $p:expr, $acc:expr) => {{
            let (b, p) = ($b, $p);
            let x = &xproj_v[(b * frames + t) * vrow + p * GATES..][..GATES];
            h_next_v[b * n_panels + p] = lstm_cell(simd, $acc, x, &mut c_v[b * n_panels + p]);
        }};
    }

    let Some(h_packed) = h_packed else {
        // h_prev is zero (t = 0): the gates are the input projection alone.
        let zero = simd.splat_f32s(0.0);
        for b in 0..batch {
            for p in 0..n_panels {
                update!(b, p, [zero; GATES]);
            }
        }
        return;
    };

    let np = if two_panels(batch) { 2 } else { 1 };
    let max = max_tile_rows::<S>(np == 2);
    let mut p = 0;
    while p < n_panels {
        let mut b0 = 0;
        while b0 < batch {
            let m = max.min(batch - b0);
            let a = &h_packed[b0 * hidden..(b0 + m) * hidden];
            with_tile!(m, np, |MR, NP| {
                let w: [H::Panel; NP] = std::array::from_fn(|j| w_hh.panel(p + j));
                let acc = matmul_tile::<S, H::Panel, MR, NP>(simd, a.as_chunks::<MR>().0, w);
                for (r, acc_r) in acc.iter().enumerate() {
                    for (j, acc_rj) in acc_r.iter().enumerate() {
                        update!(b0 + r, p + j, *acc_rj);
                    }
                }
            });
            b0 += m;
        }
        p += np;
    }
}

/// Two panels per tile while the batch is small (more independent accumulator chains per
/// weight row), one panel and more rows otherwise. (The panel count is even: 256 / 16.)
#[inline(always)]
fn two_panels(batch: usize) -> bool {
    batch <= 3
}

/// The LSTM cell update for one vector of units, from the four gate pre-activations
/// (`acc + x`): `c = σ(f)·c + σ(i)·tanh(g)`; returns `h = σ(o)·tanh(c)`.
#[inline(always)]
fn lstm_cell<S: Simd>(
    simd: S,
    acc: [S::f32s; GATES],
    x: &[S::f32s],
    cell: &mut S::f32s,
) -> S::f32s {
    let i = sigmoid(simd, simd.add_f32s(acc[0], x[0]));
    let f = sigmoid(simd, simd.add_f32s(acc[1], x[1]));
    let g = tanh(simd, simd.add_f32s(acc[2], x[2]));
    let o = sigmoid(simd, simd.add_f32s(acc[3], x[3]));
    *cell = simd.mul_add_f32s(f, *cell, simd.mul_f32s(i, g));
    simd.mul_f32s(o, tanh(simd, *cell))
}

/// The micro-kernel: for `MR` rows packed as `a[k][r]` and `NP` weight panels (each
/// `[k][GATES]` vectors), returns `acc[r][j][q] = Σ_k a[k][r] · w[j][k][q]`.
///
/// Everything is sized by const generics so that, once inlined, the accumulators live in
/// registers and the loop body is straight-line FMAs with one broadcast per row and `k`.
// Indexing (not iterators) on purpose: the const-size loops unroll into register tiles.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn matmul_tile<S: Simd, P: Panel<S>, const MR: usize, const NP: usize>(
    simd: S,
    a: &[[f32; MR]],
    w: [P; NP],
) -> [[[S::f32s; GATES]; NP]; MR] {
    let k_len = a.len();
    // Cutting the panels to exactly `k_len` rows lets the optimiser drop the bounds checks.
    let w: [P; NP] = w.map(|panel| panel.prefix(k_len));
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[[zero; GATES]; NP]; MR];
    for (k, ak) in a.iter().enumerate() {
        let mut wk = [[zero; GATES]; NP];
        for j in 0..NP {
            wk[j] = w[j].row(simd, k);
        }
        for r in 0..MR {
            let ar = simd.splat_f32s(ak[r]);
            for j in 0..NP {
                for q in 0..GATES {
                    acc[r][j][q] = simd.mul_add_f32s(ar, wk[j][q], acc[r][j][q]);
                }
            }
        }
    }
    acc
}

/// `tanh(x)`: the odd 13/6 rational minimax approximation used by Eigen, XLA and ONNX Runtime
/// (MLAS), clamped where `tanh` rounds to ±1 in `f32`. Max abs error 2.4e-7 (see tests),
/// well within the 0.9999-cosine parity budget, and it vectorises (one division, no `exp`).
#[allow(clippy::excessive_precision)]
#[inline(always)]
fn tanh<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    // The published coefficients (Eigen `ptanh_float`, MLAS `MlasTanhConstants`), digits kept
    // as published so they can be checked against the sources; the clamp is where tanh rounds
    // to ±1 in f32.
    const CLAMP: f32 = 7.905_311_107_635_498;
    const ALPHA: [f32; 7] = [
        -2.760_768_477_423_55e-16,
        2.000_187_904_824_77e-13,
        -8.604_671_522_137_35e-11,
        5.122_297_090_371_14e-8,
        1.485_722_357_179_79e-5,
        6.372_619_288_754_36e-4,
        4.893_524_558_917_86e-3,
    ];
    const BETA: [f32; 4] = [
        1.198_258_394_667_02e-6,
        1.185_347_056_866_54e-4,
        2.268_434_632_439_00e-3,
        4.893_525_185_543_85e-3,
    ];
    let x = simd.min_f32s(
        simd.max_f32s(x, simd.splat_f32s(-CLAMP)),
        simd.splat_f32s(CLAMP),
    );
    let x2 = simd.mul_f32s(x, x);
    let mut p = simd.splat_f32s(ALPHA[0]);
    for &a in &ALPHA[1..] {
        p = simd.mul_add_f32s(p, x2, simd.splat_f32s(a));
    }
    let p = simd.mul_f32s(p, x);
    let mut q = simd.splat_f32s(BETA[0]);
    for &b in &BETA[1..] {
        q = simd.mul_add_f32s(q, x2, simd.splat_f32s(b));
    }
    simd.div_f32s(p, q)
}

/// `σ(x) = ½·tanh(x/2) + ½`, reusing the vectorised `tanh`.
#[inline(always)]
fn sigmoid<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let half = simd.splat_f32s(0.5);
    simd.mul_add_f32s(half, tanh(simd, simd.mul_f32s(half, x)), half)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Apply<'a> {
        x: &'a [f32],
        sig: bool,
    }

    impl WithSimd for Apply<'_> {
        type Output = Vec<f32>;

        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
            let mut out = self.x.to_vec();
            let (v, tail) = S::as_mut_simd_f32s(&mut out);
            for x in v.iter_mut() {
                *x = if self.sig {
                    sigmoid(simd, *x)
                } else {
                    tanh(simd, *x)
                };
            }
            assert!(tail.is_empty());
            out
        }
    }

    /// The approximations stay within 5e-7 (a few f32 ulps of 1) of the exact functions over the whole useful range
    /// (beyond ±20 both are flat to within f32 resolution).
    #[test]
    fn tanh_and_sigmoid_are_accurate() {
        let x: Vec<f32> = (0..64 * 1024)
            .map(|i| (i as f32 / (64.0 * 1024.0) - 0.5) * 40.0)
            .collect();
        let arch = Arch::new();
        let t = arch.dispatch(Apply { x: &x, sig: false });
        let s = arch.dispatch(Apply { x: &x, sig: true });
        let mut err_t = 0.0f64;
        let mut err_s = 0.0f64;
        for ((&xi, &ti), &si) in x.iter().zip(&t).zip(&s) {
            let xd = f64::from(xi);
            err_t = err_t.max((xd.tanh() - f64::from(ti)).abs());
            err_s = err_s.max((1.0 / (1.0 + (-xd).exp()) - f64::from(si)).abs());
        }
        assert!(err_t < 5e-7, "tanh max abs error {err_t}");
        assert!(err_s < 5e-7, "sigmoid max abs error {err_s}");
    }
}
