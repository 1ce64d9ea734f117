//! The one matrix-product kernel of the fast path, with runtime SIMD dispatch through [`pulp`]
//! (AVX-512 / AVX2+FMA where the CPU has them) and no `unsafe` in this crate.

use pulp::{Simd, WithSimd};

/// `out[i * n + j] = a[i, :] · b[j, :]` with `a` `[m, k]` and `b` `[n, k]`, both row-major (every
/// operand here has its reduction axis contiguous, so each output is a dot product of two
/// contiguous rows). Single-threaded; callers split work across the pool themselves.
pub(crate) fn gemm_nt(a: &[f32], b: &[f32], k: usize, out: &mut [f32]) {
    gemm_nt_strided(a, k, a.len() / k, b, k, out);
}

/// [`gemm_nt`] where row `i` of `a` is `a[i * lda..][..k]`: with `lda < k` the rows overlap, so
/// a strided or tap-major convolution runs straight on its input, without an im2col copy.
pub(crate) fn gemm_nt_strided(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &[f32],
    k: usize,
    out: &mut [f32],
) {
    debug_assert!(m == 0 || (m - 1) * lda + k <= a.len());
    debug_assert_eq!(out.len(), m * (b.len() / k));
    pulp::Arch::new().dispatch(GemmNt {
        a,
        lda,
        m,
        b,
        k,
        out,
    });
}

struct GemmNt<'a> {
    a: &'a [f32],
    lda: usize,
    m: usize,
    b: &'a [f32],
    k: usize,
    out: &'a mut [f32],
}

impl WithSimd for GemmNt<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            a,
            lda,
            m,
            b,
            k,
            out,
        } = self;
        let n = b.len() / k;
        let row = |i: usize| &a[i * lda..][..k];
        // 2 × 4 output tiles: 8 accumulators hide the FMA latency, and 6 row loads per 8 FMAs
        // keep the load ports from being the bottleneck.
        let mut out_rows = out.chunks_exact_mut(2 * n);
        let mut i = 0;
        for out2 in &mut out_rows {
            let (a0, a1) = (row(i), row(i + 1));
            let (o0, o1) = out2.split_at_mut(n);
            let mut b_rows = b.chunks_exact(4 * k);
            let mut j = 0;
            for b4 in &mut b_rows {
                let r = tile::<S, 2, 4>(simd, [a0, a1], rows4(b4, k));
                o0[j..j + 4].copy_from_slice(&r[0]);
                o1[j..j + 4].copy_from_slice(&r[1]);
                j += 4;
            }
            for b1 in b_rows.remainder().chunks_exact(k) {
                let r = tile::<S, 2, 1>(simd, [a0, a1], [b1]);
                o0[j] = r[0][0];
                o1[j] = r[1][0];
                j += 1;
            }
            i += 2;
        }
        if i < m {
            let a0 = row(i);
            let o0 = out_rows.into_remainder();
            let mut b_rows = b.chunks_exact(4 * k);
            let mut j = 0;
            for b4 in &mut b_rows {
                let r = tile::<S, 1, 4>(simd, [a0], rows4(b4, k));
                o0[j..j + 4].copy_from_slice(&r[0]);
                j += 4;
            }
            for b1 in b_rows.remainder().chunks_exact(k) {
                o0[j] = tile::<S, 1, 1>(simd, [a0], [b1])[0][0];
                j += 1;
            }
        }
    }
}

#[inline(always)]
fn rows4(b4: &[f32], k: usize) -> [&[f32]; 4] {
    let (b0, rest) = b4.split_at(k);
    let (b1, rest) = rest.split_at(k);
    let (b2, b3) = rest.split_at(k);
    [b0, b1, b2, b3]
}

/// The `MR × NR` dot products of `a` rows with `b` rows (all of one length).
#[inline(always)]
fn tile<S: Simd, const MR: usize, const NR: usize>(
    simd: S,
    a: [&[f32]; MR],
    b: [&[f32]; NR],
) -> [[f32; NR]; MR] {
    let k = a[0].len();
    let lanes = k / S::F32_LANES;
    let av = a.map(|r| &S::as_simd_f32s(r).0[..lanes]);
    let bv = b.map(|r| &S::as_simd_f32s(r).0[..lanes]);
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; NR]; MR];
    for l in 0..lanes {
        let mut bl = [zero; NR];
        for (x, row) in bl.iter_mut().zip(&bv) {
            *x = row[l];
        }
        for (acc_i, row) in acc.iter_mut().zip(&av) {
            let x = row[l];
            for (acc_ij, &y) in acc_i.iter_mut().zip(&bl) {
                *acc_ij = simd.mul_add_f32s(x, y, *acc_ij);
            }
        }
    }
    let tail = lanes * S::F32_LANES;
    let mut out = [[0.0; NR]; MR];
    for ((out_i, acc_i), a_i) in out.iter_mut().zip(&acc).zip(&a) {
        for ((o, &acc_ij), b_j) in out_i.iter_mut().zip(acc_i).zip(&b) {
            let rest: f32 = a_i[tail..]
                .iter()
                .zip(&b_j[tail..])
                .map(|(x, y)| x * y)
                .sum();
            *o = simd.reduce_sum_f32s(acc_ij) + rest;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strided_rows_match_an_explicit_copy() {
        // Overlapping rows (lda < k), as the segmentation model's convolutions use them.
        let (m, n, k, lda) = (7, 5, 33, 10);
        let a: Vec<f32> = (0..(m - 1) * lda + k)
            .map(|i| (i % 17) as f32 - 8.0)
            .collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 / 3.0).collect();
        let copied: Vec<f32> = (0..m).flat_map(|i| a[i * lda..][..k].to_vec()).collect();
        let mut want = vec![0.0; m * n];
        gemm_nt(&copied, &b, k, &mut want);
        let mut got = vec![0.0; m * n];
        gemm_nt_strided(&a, lda, m, &b, k, &mut got);
        assert_eq!(got, want);
    }

    #[test]
    fn gemm_matches_naive() {
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (4, 8, 387), (5, 9, 256), (2, 4, 16)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
                .collect();
            let mut out = vec![0.0; m * n];
            gemm_nt(&a, &b, k, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
                    assert!(
                        (out[i * n + j] - want).abs() < 1e-4,
                        "{m}×{n}×{k} at ({i},{j})"
                    );
                }
            }
        }
    }
}
