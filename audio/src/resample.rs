//! Resampling to 16 kHz: [`resample_to_16k`] for a whole recording, [`StreamResampler`] for a
//! live stream in pieces, both the same time-aligned windowed sinc (rubato), set up once in
//! [`sinc_resampler`].

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
    calculate_cutoff,
};

use crate::decode::{DecodeError, MAX_INPUT_SAMPLE_RATE, MIN_INPUT_SAMPLE_RATE};
use diglett_schemas::SAMPLE_RATE;

/// Length of the resampler's windowed sinc, in input samples: rubato's recommended starting
/// point (its README example uses 256 taps with `BlackmanHarris2`, as we do).
const RESAMPLER_SINC_LEN: usize = 256;

/// Sub-sample positions tabulated for the sinc (rubato's README uses 256 with linear
/// interpolation between them). Measured error on a 0.4-amplitude tone: below 1.2e-5, under
/// 16-bit quantisation (3e-5); see `resampler_is_time_aligned_at_all_rates`.
const RESAMPLER_OVERSAMPLING: usize = 256;

/// Input frames per resampler call; any size works, 1024 keeps the buffers in L1/L2.
const RESAMPLER_CHUNK: usize = 1024;

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A sinc resampler to 16 kHz with the time alignment of [`resample_to_16k`]: prepend `lead`
/// zeros to the input and drop the first `skip` outputs.
struct Aligned {
    resampler: SincFixedIn<f32>,
    skip: usize,
    lead: usize,
    ratio: f64,
}

/// The one set-up of the resampler both [`resample_to_16k`] and [`StreamResampler`] use,
/// taking `chunk` input frames per call.
fn sinc_resampler(from_rate: u32, chunk: usize) -> Result<Aligned, DecodeError> {
    let g = gcd(from_rate, SAMPLE_RATE);
    let ratio = f64::from(SAMPLE_RATE) / f64::from(from_rate);
    let params = SincInterpolationParameters {
        sinc_len: RESAMPLER_SINC_LEN,
        f_cutoff: calculate_cutoff::<f32>(RESAMPLER_SINC_LEN, WindowFunction::BlackmanHarris2),
        oversampling_factor: RESAMPLER_OVERSAMPLING,
        interpolation: SincInterpolationType::Linear,
        window: WindowFunction::BlackmanHarris2,
    };
    let resampler = SincFixedIn::<f32>::new(ratio, 1.0, params, chunk, 1)
        .map_err(|e| DecodeError::Resample(e.to_string()))?;
    Ok(Aligned {
        resampler,
        skip: (SAMPLE_RATE / g - 1) as usize,
        lead: (from_rate / g - 1) as usize,
        ratio,
    })
}

/// Resamples mono audio from `from_rate` to [`SAMPLE_RATE`] (a copy when it is already 16 kHz).
///
/// rubato's `SincFixedIn` (256-tap Blackman-Harris² sinc, rubato's fitted cutoff for that
/// length) does the filtering. The output is time-aligned: sample `m` is the band-limited input
/// at time `m / 16000 + 1 / (256 * from_rate)` s, and there are `round(n * 16000 / from_rate)`
/// samples. The residual 1/256 of an input sample (at most 0.5 µs, at 8 kHz) is rubato 0.16's
/// sub-sample sinc table being one entry off; integer shifts cannot remove it and it is far
/// below anything audible or measurable in the features.
///
/// How the alignment is obtained: with a fresh `SincFixedIn`, output `j` is the input
/// interpolated at position `(j + 1) * from_rate / 16000 - 1 + 1/256` (its index starts at
/// `-sinc_len/2`, its first step lands one input step later, and its kernel peaks
/// `sinc_len/2 - 1 + 1/256` samples after the index). Prepending `lead` zeros and dropping
/// `skip` outputs with `(skip + 1) / 16000 = (lead + 1) / from_rate`, i.e.
/// `skip = 16000/g - 1` and `lead = from_rate/g - 1` with `g = gcd(from_rate, 16000)`, maps
/// output `m` to input position `m * from_rate / 16000 (+ 1/256)`. rubato's `output_delay()`
/// (half the sinc, in output frames) does not describe this time offset, so it is not used; the
/// unit test `resampler_is_time_aligned_at_all_rates` checks the alignment to 2e-5 at nine
/// rates. The tail is flushed with zeros until every output sample is computed.
pub fn resample_to_16k(input: &[f32], from_rate: u32) -> Result<Vec<f32>, DecodeError> {
    if from_rate == SAMPLE_RATE {
        return Ok(input.to_vec());
    }
    if from_rate == 0 {
        return Err(DecodeError::SampleRate(0));
    }
    let out_len = usize::try_from(
        (input.len() as u64 * u64::from(SAMPLE_RATE) + u64::from(from_rate / 2))
            / u64::from(from_rate),
    )
    .map_err(|_| DecodeError::Resample("input too long".into()))?;
    if out_len == 0 {
        return Ok(Vec::new());
    }
    let Aligned {
        mut resampler,
        skip,
        lead,
        ratio,
    } = sinc_resampler(from_rate, RESAMPLER_CHUNK)?;

    let mut chunk = vec![0.0f32; RESAMPLER_CHUNK];
    let mut produced = vec![vec![0.0f32; resampler.output_frames_max()]];
    let mut out = Vec::with_capacity(out_len);
    let mut to_skip = skip;
    // The virtual input stream is `lead` zeros, then `input`, then zeros for ever.
    let input_span = lead..lead + input.len();
    // Outputs trail inputs by about half a sinc plus one chunk; anything beyond this bound
    // means the resampler is not producing what it should.
    let needed_inputs = (skip + out_len) as f64 / ratio;
    let max_chunks = (needed_inputs as usize + 2 * RESAMPLER_SINC_LEN) / RESAMPLER_CHUNK + 8;
    let mut pos = 0usize;
    for _ in 0..max_chunks {
        chunk.fill(0.0);
        let a = pos.max(input_span.start);
        let b = (pos + RESAMPLER_CHUNK).min(input_span.end);
        if a < b {
            chunk[a - pos..b - pos].copy_from_slice(&input[a - lead..b - lead]);
        }
        pos += RESAMPLER_CHUNK;
        let (_, n) = resampler
            .process_into_buffer(&[&chunk[..]], &mut produced, None)
            .map_err(|e| DecodeError::Resample(e.to_string()))?;
        let fresh = &produced[0][..n];
        let skipped = to_skip.min(fresh.len());
        to_skip -= skipped;
        let take = (out_len - out.len()).min(fresh.len() - skipped);
        out.extend_from_slice(&fresh[skipped..skipped + take]);
        if out.len() == out_len {
            return Ok(out);
        }
    }
    Err(DecodeError::Resample(format!(
        "resampler produced {} of {out_len} samples",
        out.len()
    )))
}

/// [`resample_to_16k`] for a live stream: input arrives in pieces of any size, output comes out
/// as soon as the resampler can compute it, with the same filter and the same time alignment
/// (output sample `m` is the input at `m / 16000` s), so a stream's times in seconds are the
/// same as for the whole signal. Output trails input by about 10 ms of input plus half the
/// sinc (128 input samples). 16 kHz input passes through unchanged.
pub struct StreamResampler {
    inner: Option<SincFixedIn<f32>>,
    chunk: usize,
    pending: Vec<f32>,
    produced: Vec<Vec<f32>>,
    to_skip: usize,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("chunk", &self.chunk)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// A resampler from `from_rate` ([`MIN_INPUT_SAMPLE_RATE`]..=[`MAX_INPUT_SAMPLE_RATE`]) to
    /// 16 kHz.
    ///
    /// # Errors
    /// [`DecodeError::SampleRate`] outside the accepted range; [`DecodeError::Resample`] if
    /// rubato refuses the parameters.
    pub fn new(from_rate: u32) -> Result<Self, DecodeError> {
        if !(MIN_INPUT_SAMPLE_RATE..=MAX_INPUT_SAMPLE_RATE).contains(&from_rate) {
            return Err(DecodeError::SampleRate(from_rate));
        }
        if from_rate == SAMPLE_RATE {
            return Ok(Self {
                inner: None,
                chunk: 0,
                pending: Vec::new(),
                produced: Vec::new(),
                to_skip: 0,
            });
        }
        // 10 ms of input per call: small enough for live latency, large enough to amortise.
        let chunk = (from_rate / 100) as usize;
        let Aligned {
            resampler: inner,
            skip,
            lead,
            ..
        } = sinc_resampler(from_rate, chunk)?;
        let produced = vec![vec![0.0f32; inner.output_frames_max()]];
        let mut pending = Vec::with_capacity(chunk * 2 + lead);
        pending.resize(lead, 0.0);
        Ok(Self {
            inner: Some(inner),
            chunk,
            pending,
            produced,
            to_skip: skip,
        })
    }

    /// Feeds `input` and appends every 16 kHz sample that can now be computed to `out`.
    ///
    /// # Errors
    /// [`DecodeError::Resample`] if rubato fails (it does not with the parameters of `new`).
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), DecodeError> {
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        self.pending.extend_from_slice(input);
        let mut start = 0;
        while self.pending.len() - start >= self.chunk {
            let (_, n) = inner
                .process_into_buffer(
                    &[&self.pending[start..start + self.chunk]],
                    &mut self.produced,
                    None,
                )
                .map_err(|e| DecodeError::Resample(e.to_string()))?;
            start += self.chunk;
            let fresh = &self.produced[0][..n];
            let skipped = self.to_skip.min(fresh.len());
            self.to_skip -= skipped;
            out.extend_from_slice(&fresh[skipped..]);
        }
        self.pending.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::tone as sine;

    /// Sub-sample time alignment: a resampled tone must match the same tone generated at
    /// 16 kHz, sample by sample, once rubato's documented 1/256-input-sample offset is
    /// accounted for. A misalignment of one input sample at 48 kHz would show an error of
    /// 2 pi 500 / 48000 * 0.4 = 0.026 here; without the offset the error would be 1e-4 to 6e-4.
    #[test]
    fn resampler_is_time_aligned_at_all_rates() {
        for rate in [
            8_000, 11_025, 12_000, 22_050, 24_000, 32_000, 44_100, 44_056, 48_000,
        ] {
            let n = rate as usize; // 1 s
            let input = sine(500.0, rate, n, 0.4);
            let out = resample_to_16k(&input, rate).unwrap();
            assert_eq!(out.len(), 16_000, "rate {rate}");
            let offset = 1.0 / (RESAMPLER_OVERSAMPLING as f64 * f64::from(rate));
            let want: Vec<f32> = (0..16_000)
                .map(|m| {
                    let t = f64::from(m) / 16_000.0 + offset;
                    (0.4 * (2.0 * std::f64::consts::PI * 500.0 * t).sin()) as f32
                })
                .collect();
            // Skip the edges, where the filter sees the signal's start and end.
            let err = crate::test_util::max_abs_diff(&out[1000..15_000], &want[1000..15_000]);
            assert!(err < 2e-5, "rate {rate}: max error {err}");
        }
    }

    /// The streaming resampler gives what the whole-signal one gives, whatever the piece sizes.
    #[test]
    fn stream_resampler_matches_whole_signal() {
        for rate in [8_000, 22_050, 44_100, 48_000, 16_000] {
            let input = sine(440.0, rate, rate as usize * 2, 0.3);
            let whole = resample_to_16k(&input, rate).unwrap();
            let mut stream = StreamResampler::new(rate).unwrap();
            let mut out = Vec::new();
            let mut pos = 0;
            let mut size = 1;
            while pos < input.len() {
                let end = (pos + size).min(input.len());
                stream.push(&input[pos..end], &mut out).unwrap();
                pos = end;
                size = size * 7 % 3001 + 1;
            }
            // All but the last ~10 ms + half a sinc is out, sample for sample.
            assert!(
                out.len() + 400 >= whole.len(),
                "rate {rate}: {} of {}",
                out.len(),
                whole.len()
            );
            let err = crate::test_util::max_abs_diff(&out, &whole);
            assert!(err < 1e-5, "rate {rate}: max difference {err}");
        }
        assert!(matches!(
            StreamResampler::new(7_999),
            Err(DecodeError::SampleRate(7_999))
        ));
        assert!(matches!(
            StreamResampler::new(96_000),
            Err(DecodeError::SampleRate(96_000))
        ));
    }

    #[test]
    fn resampler_lengths_round() {
        // round(n * 16000 / rate)
        assert_eq!(resample_to_16k(&[0.1; 441], 44_100).unwrap().len(), 160);
        assert_eq!(resample_to_16k(&[0.1; 3], 48_000).unwrap().len(), 1);
        assert_eq!(resample_to_16k(&[0.1; 1], 48_000).unwrap().len(), 0);
        assert_eq!(resample_to_16k(&[0.1; 5], 8_000).unwrap().len(), 10);
        assert_eq!(resample_to_16k(&[], 22_050).unwrap().len(), 0);
        let same = [0.25f32, -0.5];
        assert_eq!(resample_to_16k(&same, 16_000).unwrap(), same);
    }
}
