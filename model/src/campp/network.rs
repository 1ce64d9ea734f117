//! The CAM++ network as burn modules — a port of 3D-Speaker's `speakerlab/models/campplus/DTDNN.py`
//! and `layers.py` (Copyright 3D-Speaker, Apache-2.0; modified: rewritten in Rust for burn, the
//! CAM mask computed once per window when the window is a single pooling segment), following
//! `shared/MODELS.md` 1.2. Parameter paths match `model/weights/campp_zh_en_common.safetensors`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig1d, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};

/// Frames (at the backbone's 20 ms rate) per CAM segment-pooling segment (3D-Speaker `seg_len`).
pub const SEG_LEN: usize = 100;
/// BatchNorm epsilon of all 122 BN layers (PyTorch default).
const BN_EPS: f64 = 1e-5;

/// Shapes of CAM++; the defaults are `CAMPPlus(feat_dim=80, embedding_size=192)`.
#[derive(Config, Debug)]
pub struct CamPlusConfig {
    /// Mel bins per input frame.
    #[config(default = 80)]
    pub feat_dim: usize,
    /// Output embedding size.
    #[config(default = 192)]
    pub embedding_size: usize,
    /// Channels of the FCM head (`m_channels`).
    #[config(default = 32)]
    pub head_channels: usize,
    /// Channels added per dense layer.
    #[config(default = 32)]
    pub growth_rate: usize,
    /// Bottleneck width = `bn_size · growth_rate` = 128.
    #[config(default = 4)]
    pub bn_size: usize,
    /// Output channels of the first TDNN layer.
    #[config(default = 128)]
    pub init_channels: usize,
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).with_epsilon(BN_EPS).init(device)
}

fn conv2d(c_in: usize, c_out: usize, k: usize, stride_f: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride_f, 1])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .init(device)
}

fn conv1d(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    bias: bool,
    device: &Device,
) -> Conv1d {
    let pad = (k - 1) / 2 * dilation;
    Conv1dConfig::new(c_in, c_out, k)
        .with_stride(stride)
        .with_dilation(dilation)
        .with_padding(PaddingConfig1d::Explicit(pad, pad))
        .with_bias(bias)
        .init(device)
}

/// The 1×1 strided projection of a downsampling residual block (upstream `shortcut` Sequential).
#[derive(Module, Debug)]
pub struct Shortcut {
    /// 1×1 conv, stride (2, 1), no bias.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

/// 2-D residual block of the FCM head; the stride applies to the frequency axis only.
#[derive(Module, Debug)]
pub struct BasicResBlock {
    /// 3×3, stride (s, 1).
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3, stride 1.
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
    /// Present when s = 2; identity otherwise.
    pub shortcut: Option<Shortcut>,
}

impl BasicResBlock {
    fn new(c: usize, stride: usize, device: &Device) -> Self {
        Self {
            conv1: conv2d(c, c, 3, stride, device),
            bn1: bn(c, device),
            conv2: conv2d(c, c, 3, 1, device),
            bn2: bn(c, device),
            shortcut: (stride != 1).then(|| Shortcut {
                conv: conv2d(c, c, 1, stride, device),
                bn: bn(c, device),
            }),
        }
    }

    /// `(B, C, F, T)` → `(B, C, F / s, T)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let y = self.bn2.forward(self.conv2.forward(y));
        let sc = match &self.shortcut {
            Some(s) => s.bn.forward(s.conv.forward(x)),
            None => x,
        };
        relu(y + sc)
    }
}

/// The FCM head: a small 2-D ResNet over (frequency, time).
#[derive(Module, Debug)]
pub struct Head {
    /// 1 → 32, 3×3.
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// Blocks with strides 2, 1.
    pub layer1: Vec<BasicResBlock>,
    /// Blocks with strides 2, 1.
    pub layer2: Vec<BasicResBlock>,
    /// 3×3, stride (2, 1).
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
}

impl Head {
    /// `(B, 1, 80, T)` → `(B, 32·10, T)` (channel index `c·10 + f`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let mut x = relu(self.bn1.forward(self.conv1.forward(x)));
        for block in self.layer1.iter().chain(&self.layer2) {
            x = block.forward(x);
        }
        let x = relu(self.bn2.forward(self.conv2.forward(x)));
        let [b, c, f, t] = x.dims();
        x.reshape([b, c * f, t])
    }
}

/// Conv1d followed by BN and ReLU (upstream `TDNNLayer`, `DenseLayer` minus the ReLU).
#[derive(Module, Debug)]
pub struct Tdnn {
    /// The convolution (no bias).
    pub linear: Conv1d,
    /// BN (upstream `nonlinear.batchnorm`).
    pub nonlinear: BatchNorm,
}

/// Context-aware masking: a local conv gated by a mask from global + segment means.
#[derive(Module, Debug)]
pub struct CamLayer {
    /// 128 → 32, k = 3, dilation d, padding d, no bias.
    pub linear_local: Conv1d,
    /// 128 → 64, k = 1, bias.
    pub linear1: Conv1d,
    /// 64 → 32, k = 1, bias.
    pub linear2: Conv1d,
}

/// Statistics pooling: the mean ‖ unbiased standard deviation over time, `(B, C, T)` →
/// `(B, 2C, 1)`.
pub fn stats_pool(h: &Tensor<3>) -> Tensor<3> {
    let mean = h.clone().mean_dim(2);
    let std = h.clone().var(2).sqrt();
    Tensor::cat(vec![mean, std], 1)
}

/// Every frame gets the mean of its [`SEG_LEN`]-frame segment; the last, partial segment is
/// averaged over its actual length (avg_pool1d with ceil_mode, done by hand). `(B, C, T)` → same.
pub fn seg_pool(h: &Tensor<3>) -> Tensor<3> {
    let [b, c, t] = h.dims();
    let segments: Vec<Tensor<3>> = (0..t.div_ceil(SEG_LEN))
        .map(|j| {
            let len = SEG_LEN.min(t - j * SEG_LEN);
            h.clone()
                .narrow(2, j * SEG_LEN, len)
                .mean_dim(2)
                .expand([b, c, len])
        })
        .collect();
    Tensor::cat(segments, 2)
}

impl CamLayer {
    /// `(B, 128, T')` → `(B, 32, T')`.
    pub fn forward(&self, h: Tensor<3>) -> Tensor<3> {
        let t = h.dims()[2];
        let global = h.clone().mean_dim(2);
        // With one segment, the context is 2·mean for every frame: compute the (k = 1) mask
        // network once and broadcast it, which is the same arithmetic per frame.
        let ctx = if t <= SEG_LEN {
            global.mul_scalar(2.0)
        } else {
            seg_pool(&h) + global
        };
        let y = self.linear_local.forward(h);
        let m = sigmoid(self.linear2.forward(relu(self.linear1.forward(ctx))));
        y * m
    }
}

/// One layer of a dense block: BN-ReLU, 1×1 bottleneck, BN-ReLU, CAM.
#[derive(Module, Debug)]
pub struct DenseLayer {
    /// Pre-activation BN on the concatenated input.
    pub nonlinear1: BatchNorm,
    /// in_c → 128, k = 1, no bias.
    pub linear1: Conv1d,
    /// BN after `linear1`.
    pub nonlinear2: BatchNorm,
    /// The CAM layer producing the 32 new channels.
    pub cam_layer: CamLayer,
}

impl DenseLayer {
    /// `(B, in_c, T')` → `(B, 32, T')`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.linear1.forward(relu(self.nonlinear1.forward(x)));
        self.cam_layer.forward(relu(self.nonlinear2.forward(h)))
    }
}

/// A dense block: each layer's 32 channels are appended after its input's.
#[derive(Module, Debug)]
pub struct DenseBlock {
    /// Layers 1… (upstream `tdnnd1`…).
    pub layers: Vec<DenseLayer>,
}

impl DenseBlock {
    /// `(B, C0, T')` → `(B, C0 + 32·L, T')`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut x = x;
        for layer in &self.layers {
            let new = layer.forward(x.clone());
            x = Tensor::cat(vec![x, new], 1);
        }
        x
    }
}

/// BN-ReLU then a 1×1 conv halving the channels.
#[derive(Module, Debug)]
pub struct Transit {
    /// Pre-activation BN.
    pub nonlinear: BatchNorm,
    /// k = 1, no bias.
    pub linear: Conv1d,
}

impl Transit {
    /// `(B, C, T')` → `(B, C / 2, T')`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.linear.forward(relu(self.nonlinear.forward(x)))
    }
}

/// The D-TDNN backbone with CAM, stats pooling and the embedding layer.
#[derive(Module, Debug)]
pub struct Xvector {
    /// 320 → 128, k = 5, stride 2.
    pub tdnn: Tdnn,
    /// 12 layers, 128 → 512.
    pub block1: DenseBlock,
    /// 512 → 256.
    pub transit1: Transit,
    /// 24 layers, dilation 2, 256 → 1024.
    pub block2: DenseBlock,
    /// 1024 → 512.
    pub transit2: Transit,
    /// 16 layers, dilation 2, 512 → 1024.
    pub block3: DenseBlock,
    /// 1024 → 512.
    pub transit3: Transit,
    /// Final BN (then ReLU).
    pub out_nonlinear: BatchNorm,
    /// 1024 → 192 (k = 1 conv) and BN(affine = False, stored as gamma = 1, beta = 0).
    pub dense: Tdnn,
}

/// CAM++ (`CAMPPlus`), 3D-Speaker form.
#[derive(Module, Debug)]
pub struct CamPlus {
    /// FCM 2-D head.
    pub head: Head,
    /// Backbone and embedding layer.
    pub xvector: Xvector,
}

/// Every intermediate of one forward pass (what the parity fixtures hold).
#[derive(Debug, Clone)]
pub struct Taps {
    /// `(B, 320, T)`.
    pub head: Tensor<3>,
    /// `(B, 128, T')`.
    pub tdnn: Tensor<3>,
    /// `(B, 512, T')`.
    pub block1: Tensor<3>,
    /// `(B, 256, T')`.
    pub transit1: Tensor<3>,
    /// `(B, 1024, T')`.
    pub block2: Tensor<3>,
    /// `(B, 512, T')`.
    pub transit2: Tensor<3>,
    /// `(B, 1024, T')`.
    pub block3: Tensor<3>,
    /// `(B, 512, T')`.
    pub transit3: Tensor<3>,
    /// `(B, 512, T')`.
    pub out_nonlinear: Tensor<3>,
    /// `(B, 1024)`: mean ‖ unbiased std over time.
    pub stats: Tensor<2>,
    /// `(B, 192)`, no final ReLU.
    pub embedding: Tensor<2>,
}

impl CamPlusConfig {
    /// A randomly initialised CAM++ of these shapes.
    pub fn init(&self, device: &Device) -> CamPlus {
        let m = self.head_channels;
        let head = Head {
            conv1: conv2d(1, m, 3, 1, device),
            bn1: bn(m, device),
            layer1: vec![
                BasicResBlock::new(m, 2, device),
                BasicResBlock::new(m, 1, device),
            ],
            layer2: vec![
                BasicResBlock::new(m, 2, device),
                BasicResBlock::new(m, 1, device),
            ],
            conv2: conv2d(m, m, 3, 2, device),
            bn2: bn(m, device),
        };
        let head_out = m * self.feat_dim.div_ceil(8);
        let bottleneck = self.bn_size * self.growth_rate;
        let block = |c0: usize, n: usize, dilation: usize| DenseBlock {
            layers: (0..n)
                .map(|i| {
                    let in_c = c0 + i * self.growth_rate;
                    DenseLayer {
                        nonlinear1: bn(in_c, device),
                        linear1: conv1d(in_c, bottleneck, 1, 1, 1, false, device),
                        nonlinear2: bn(bottleneck, device),
                        cam_layer: CamLayer {
                            linear_local: conv1d(
                                bottleneck,
                                self.growth_rate,
                                3,
                                1,
                                dilation,
                                false,
                                device,
                            ),
                            linear1: conv1d(bottleneck, bottleneck / 2, 1, 1, 1, true, device),
                            linear2: conv1d(
                                bottleneck / 2,
                                self.growth_rate,
                                1,
                                1,
                                1,
                                true,
                                device,
                            ),
                        },
                    }
                })
                .collect(),
        };
        let transit = |c: usize| Transit {
            nonlinear: bn(c, device),
            linear: conv1d(c, c / 2, 1, 1, 1, false, device),
        };
        // Channel bookkeeping of `CAMPPlus.__init__`: (layers, kernel 3, dilation) per block.
        let mut c = self.init_channels;
        let mut blocks = Vec::new();
        let mut transits = Vec::new();
        for (n, dilation) in [(12, 1), (24, 2), (16, 2)] {
            blocks.push(block(c, n, dilation));
            c += n * self.growth_rate;
            transits.push(transit(c));
            c /= 2;
        }
        let mut blocks = blocks.into_iter();
        let mut transits = transits.into_iter();
        let mut next = || {
            (
                blocks
                    .next()
                    .unwrap_or_else(|| unreachable!("three blocks")),
                transits
                    .next()
                    .unwrap_or_else(|| unreachable!("three transits")),
            )
        };
        let (block1, transit1) = next();
        let (block2, transit2) = next();
        let (block3, transit3) = next();
        let xvector = Xvector {
            tdnn: Tdnn {
                linear: conv1d(head_out, self.init_channels, 5, 2, 1, false, device),
                nonlinear: bn(self.init_channels, device),
            },
            block1,
            transit1,
            block2,
            transit2,
            block3,
            transit3,
            out_nonlinear: bn(c, device),
            dense: Tdnn {
                linear: conv1d(2 * c, self.embedding_size, 1, 1, 1, false, device),
                nonlinear: bn(self.embedding_size, device),
            },
        };
        CamPlus { head, xvector }
    }
}

impl CamPlus {
    /// The forward pass keeping every intermediate (the parity tests compare each one; the list
    /// of stages is the network's and the taps', so it is spelt out in both); `features`: `(B, T, 80)` mean-normalised
    /// fbank, T ≥ 3.
    pub fn forward_taps(&self, features: Tensor<3>) -> Taps {
        let x = features.swap_dims(1, 2).unsqueeze_dim::<4>(1); // (B, 1, 80, T)
        let head = self.head.forward(x);
        let xv = &self.xvector;
        let tdnn = relu(
            xv.tdnn
                .nonlinear
                .forward(xv.tdnn.linear.forward(head.clone())),
        );
        let block1 = xv.block1.forward(tdnn.clone());
        let transit1 = xv.transit1.forward(block1.clone());
        let block2 = xv.block2.forward(transit1.clone());
        let transit2 = xv.transit2.forward(block2.clone());
        let block3 = xv.block3.forward(transit2.clone());
        let transit3 = xv.transit3.forward(block3.clone());
        let out_nonlinear = relu(xv.out_nonlinear.forward(transit3.clone()));
        let [b, c, _] = out_nonlinear.dims();
        let stats = stats_pool(&out_nonlinear);
        let embedding = xv
            .dense
            .nonlinear
            .forward(xv.dense.linear.forward(stats.clone()));
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

    /// `(B, T, 80)` mean-normalised fbank (T ≥ 3) → `(B, 192)` embeddings (3D-Speaker form: no
    /// final ReLU, not normalised).
    pub fn forward(&self, features: Tensor<3>) -> Tensor<2> {
        self.forward_taps(features).embedding
    }
}
