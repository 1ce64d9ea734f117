//! CAM++'s fast forward pass, still in burn: every convolution is one (batched) matrix
//! product over an im2col of its input, and every BatchNorm that follows a convolution is folded
//! into it once, at load. burn-ndarray runs `Conv1d`/`Conv2d` as direct loops (one multiply-add
//! row per input channel and tap), which makes the module form of [`CamPlus`] cost about 1.5 s
//! per 1.6 s window; its matrix product is `matrixmultiply`'s packed SIMD kernel. The arithmetic
//! is the module's, reassociated: `tests/it/campp_parity.rs` holds both forms to the PyTorch
//! fixtures and to each other.

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::{Conv1d, Conv2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Int, Tensor};

use super::network::{
    BasicResBlock, CamLayer, CamPlus, DenseBlock, DenseLayer, SEG_LEN, Taps, Transit, seg_pool,
    stats_pool,
};

/// A per-channel affine map `x · scale + shift` (an inference-mode BatchNorm).
#[derive(Debug, Clone)]
struct Affine {
    scale: Tensor<1>,
    shift: Tensor<1>,
}

impl Affine {
    fn of(bn: &BatchNorm) -> Self {
        let inv = bn.running_var.value().add_scalar(bn.epsilon).sqrt().recip();
        let scale = bn.gamma.val() * inv;
        let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
        Self { scale, shift }
    }

    /// On `(B, C, T)`.
    fn apply3(&self, x: Tensor<3>) -> Tensor<3> {
        let c = self.scale.dims()[0];
        x * self.scale.clone().reshape([1, c, 1]) + self.shift.clone().reshape([1, c, 1])
    }
}

/// A convolution as a matrix `[C_out, C_in · taps]` (PyTorch's weight order) plus a bias, with
/// the BatchNorm after it (if any) folded in.
#[derive(Debug, Clone)]
struct Folded {
    w: Tensor<3>,
    bias: Option<Tensor<1>>,
}

impl Folded {
    fn new(weight_2d: Tensor<2>, bias: Option<Tensor<1>>, bn: Option<&BatchNorm>) -> Self {
        let [c_out, k] = weight_2d.dims();
        let (w, bias) = match bn {
            None => (weight_2d, bias),
            Some(bn) => {
                let a = Affine::of(bn);
                let w = weight_2d * a.scale.clone().reshape([c_out, 1]);
                let b = match bias {
                    Some(b) => b * a.scale + a.shift,
                    None => a.shift,
                };
                (w, Some(b))
            }
        };
        Self {
            w: w.reshape([1, c_out, k]),
            bias,
        }
    }

    fn conv1d(conv: &Conv1d, bn: Option<&BatchNorm>) -> Self {
        let w = conv.weight.val();
        let [c_out, c_in, k] = w.dims();
        Self::new(
            w.reshape([c_out, c_in * k]),
            conv.bias.as_ref().map(Param::val),
            bn,
        )
    }

    fn conv2d(conv: &Conv2d, bn: Option<&BatchNorm>) -> Self {
        let w = conv.weight.val();
        let [c_out, c_in, kh, kw] = w.dims();
        Self::new(
            w.reshape([c_out, c_in * kh * kw]),
            conv.bias.as_ref().map(Param::val),
            bn,
        )
    }

    /// `cols` `(B, C_in · taps, N)` → `(B, C_out, N)`.
    fn apply(&self, cols: Tensor<3>) -> Tensor<3> {
        let y = self.w.clone().matmul(cols);
        match &self.bias {
            Some(b) => {
                let c = b.dims()[0];
                y + b.clone().reshape([1, c, 1])
            }
            None => y,
        }
    }
}

/// Frame indices `start, start + step, …` (`count` of them).
fn strided(start: usize, step: usize, count: usize, device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::arange_step(start as i64..(start + step * count) as i64, step, device)
}

/// A 3×3 (or 1×1) conv2d with padding `k / 2` and stride `(stride_f, 1)`, on `(B, C, F, T)`.
#[derive(Debug, Clone)]
struct Conv2dMm {
    f: Folded,
    k: usize,
    stride_f: usize,
}

impl Conv2dMm {
    fn new(conv: &Conv2d, bn: &BatchNorm) -> Self {
        let [_, _, k, _] = conv.weight.val().dims();
        Self {
            f: Folded::conv2d(conv, Some(bn)),
            k,
            stride_f: conv.stride[0],
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, f, t] = x.dims();
        let p = self.k / 2;
        let f_out = (f + 2 * p - self.k) / self.stride_f + 1;
        let device = x.device();
        let xp = if p > 0 {
            x.pad([(p, p), (p, p)], PadMode::Constant(0.0))
        } else {
            x
        };
        let mut taps = Vec::with_capacity(self.k * self.k);
        for kh in 0..self.k {
            let rows = if self.stride_f == 1 {
                xp.clone().narrow(2, kh, f_out)
            } else {
                xp.clone()
                    .select(2, strided(kh, self.stride_f, f_out, &device))
            };
            for kw in 0..self.k {
                taps.push(rows.clone().narrow(3, kw, t));
            }
        }
        let cols = if taps.len() == 1 {
            taps.remove(0).reshape([b, c, f_out * t])
        } else {
            Tensor::<4>::stack::<5>(taps, 2).reshape([b, c * self.k * self.k, f_out * t])
        };
        let y = self.f.apply(cols);
        let c_out = y.dims()[1];
        y.reshape([b, c_out, f_out, t])
    }
}

/// A conv1d `k` taps, dilation `d`, padding `(k − 1) / 2 · d`, stride `s`, on `(B, C, T)`.
#[derive(Debug, Clone)]
struct Conv1dMm {
    f: Folded,
    k: usize,
    dilation: usize,
    stride: usize,
}

impl Conv1dMm {
    fn new(conv: &Conv1d, bn: Option<&BatchNorm>) -> Self {
        Self {
            f: Folded::conv1d(conv, bn),
            k: conv.kernel_size,
            dilation: conv.dilation,
            stride: conv.stride,
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        if self.k == 1 && self.stride == 1 {
            return self.f.apply(x);
        }
        let [b, c, t] = x.dims();
        let device = x.device();
        let pad = (self.k - 1) / 2 * self.dilation;
        let span = self.dilation * (self.k - 1);
        let t_full = t + 2 * pad - span; // outputs at stride 1
        let xp = x.pad([(pad, pad)], PadMode::Constant(0.0));
        let taps: Vec<Tensor<3>> = (0..self.k)
            .map(|j| xp.clone().narrow(2, j * self.dilation, t_full))
            .collect();
        let cols = Tensor::<3>::stack::<4>(taps, 2).reshape([b, c * self.k, t_full]);
        let cols = if self.stride == 1 {
            cols
        } else {
            let t_out = (t_full - 1) / self.stride + 1;
            cols.select(2, strided(0, self.stride, t_out, &device))
        };
        self.f.apply(cols)
    }
}

#[derive(Debug, Clone)]
struct ResBlockMm {
    conv1: Conv2dMm,
    conv2: Conv2dMm,
    shortcut: Option<Conv2dMm>,
}

impl ResBlockMm {
    fn new(b: &BasicResBlock) -> Self {
        Self {
            conv1: Conv2dMm::new(&b.conv1, &b.bn1),
            conv2: Conv2dMm::new(&b.conv2, &b.bn2),
            shortcut: b.shortcut.as_ref().map(|s| Conv2dMm::new(&s.conv, &s.bn)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(self.conv1.forward(x.clone()));
        let y = self.conv2.forward(y);
        let sc = match &self.shortcut {
            Some(s) => s.forward(x),
            None => x,
        };
        relu(y + sc)
    }
}

#[derive(Debug, Clone)]
struct CamMm {
    local: Conv1dMm,
    mask1: Folded,
    mask2: Folded,
}

impl CamMm {
    fn new(c: &CamLayer) -> Self {
        Self {
            local: Conv1dMm::new(&c.linear_local, None),
            mask1: Folded::conv1d(&c.linear1, None),
            mask2: Folded::conv1d(&c.linear2, None),
        }
    }

    fn forward(&self, h: Tensor<3>) -> Tensor<3> {
        let t = h.dims()[2];
        let global = h.clone().mean_dim(2);
        let ctx = if t <= SEG_LEN {
            global.mul_scalar(2.0)
        } else {
            seg_pool(&h) + global
        };
        let m = sigmoid(self.mask2.apply(relu(self.mask1.apply(ctx))));
        self.local.forward(h) * m
    }
}

#[derive(Debug, Clone)]
struct DenseLayerMm {
    pre: Affine,
    bottleneck: Folded,
    cam: CamMm,
}

impl DenseLayerMm {
    fn new(l: &DenseLayer) -> Self {
        Self {
            pre: Affine::of(&l.nonlinear1),
            bottleneck: Folded::conv1d(&l.linear1, Some(&l.nonlinear2)),
            cam: CamMm::new(&l.cam_layer),
        }
    }
}

#[derive(Debug, Clone)]
struct BlockMm {
    layers: Vec<DenseLayerMm>,
}

impl BlockMm {
    fn new(b: &DenseBlock) -> Self {
        Self {
            layers: b.layers.iter().map(DenseLayerMm::new).collect(),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut x = x;
        for l in &self.layers {
            let h = relu(l.bottleneck.apply(relu(l.pre.apply3(x.clone()))));
            let new = l.cam.forward(h);
            x = Tensor::cat(vec![x, new], 1);
        }
        x
    }
}

#[derive(Debug, Clone)]
struct TransitMm {
    pre: Affine,
    linear: Folded,
}

impl TransitMm {
    fn new(t: &Transit) -> Self {
        Self {
            pre: Affine::of(&t.nonlinear),
            linear: Folded::conv1d(&t.linear, None),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.linear.apply(relu(self.pre.apply3(x)))
    }
}

/// CAM++ with every convolution a matrix product and its BatchNorms folded: what
/// [`super::CamPlusEncoder`] runs. Built once from the parity-tested [`CamPlus`] modules.
#[derive(Debug, Clone)]
pub struct CamPlusMm {
    head_conv1: Conv2dMm,
    head_blocks: Vec<ResBlockMm>,
    head_conv2: Conv2dMm,
    tdnn: Conv1dMm,
    blocks: [BlockMm; 3],
    transits: [TransitMm; 3],
    out: Affine,
    dense: Folded,
}

impl CamPlusMm {
    /// Folds and reshapes `model`'s weights (on `model`'s device).
    pub fn new(model: &CamPlus) -> Self {
        let h = &model.head;
        let xv = &model.xvector;
        Self {
            head_conv1: Conv2dMm::new(&h.conv1, &h.bn1),
            head_blocks: h
                .layer1
                .iter()
                .chain(&h.layer2)
                .map(ResBlockMm::new)
                .collect(),
            head_conv2: Conv2dMm::new(&h.conv2, &h.bn2),
            tdnn: Conv1dMm::new(&xv.tdnn.linear, Some(&xv.tdnn.nonlinear)),
            blocks: [
                BlockMm::new(&xv.block1),
                BlockMm::new(&xv.block2),
                BlockMm::new(&xv.block3),
            ],
            transits: [
                TransitMm::new(&xv.transit1),
                TransitMm::new(&xv.transit2),
                TransitMm::new(&xv.transit3),
            ],
            out: Affine::of(&xv.out_nonlinear),
            dense: Folded::conv1d(&xv.dense.linear, Some(&xv.dense.nonlinear)),
        }
    }

    /// As [`CamPlus::forward_taps`].
    pub fn forward_taps(&self, features: Tensor<3>) -> Taps {
        let x = features.swap_dims(1, 2).unsqueeze_dim::<4>(1); // (B, 1, 80, T)
        let mut x = relu(self.head_conv1.forward(x));
        for block in &self.head_blocks {
            x = block.forward(x);
        }
        let x = relu(self.head_conv2.forward(x));
        let [b, c, f, t] = x.dims();
        let head = x.reshape([b, c * f, t]);
        let tdnn = relu(self.tdnn.forward(head.clone()));
        let block1 = self.blocks[0].forward(tdnn.clone());
        let transit1 = self.transits[0].forward(block1.clone());
        let block2 = self.blocks[1].forward(transit1.clone());
        let transit2 = self.transits[1].forward(block2.clone());
        let block3 = self.blocks[2].forward(transit2.clone());
        let transit3 = self.transits[2].forward(block3.clone());
        let out_nonlinear = relu(self.out.apply3(transit3.clone()));
        let [b, c, _] = out_nonlinear.dims();
        let stats = stats_pool(&out_nonlinear);
        let embedding = self.dense.apply(stats.clone());
        let e = embedding.dims()[1];
        Taps {
            head,
            tdnn,
            block1,
            transit1,
            block2,
            transit2,
            block3,
            transit3,
            out_nonlinear,
            stats: stats.reshape([b, 2 * c]),
            embedding: embedding.reshape([b, e]),
        }
    }

    /// As [`CamPlus::forward`].
    pub fn forward(&self, features: Tensor<3>) -> Tensor<2> {
        self.forward_taps(features).embedding
    }
}
