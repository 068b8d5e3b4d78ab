//! Standard normal draws, eight at a time: a 256-layer ziggurat over eight Xoshiro256++ lanes.
//!
//! The eight generators are stepped together (struct of arrays), so the common path of the
//! ziggurat (one 64-bit draw, a table lookup, a multiply and a compare per value, about 98.8% of
//! draws) runs in SIMD registers. A lane whose candidate falls outside its rectangle finishes
//! its value with the scalar slow path on its own state, so every round yields exactly one
//! value per lane and value `8 r + j` of a buffer always comes from lane `j`.
//!
//! Kernels are compiled for AVX-512 and AVX2 besides the baseline and chosen at run time. Only
//! integer operations, exact comparisons and single roundings (no fused multiply-add) are used
//! on the fast path, so every kernel gives the same bits; a test checks this.

use super::real::Real;
use super::rng::splitmix64;
use super::ziggurat_tables::{F, R, X};

/// Lanes stepped together.
pub const LANES: usize = 8;

/// Eight independent Xoshiro256++ generators, word `w` of lane `j` at `s[w][j]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalLanes {
    s: [[u64; LANES]; 4],
}

impl NormalLanes {
    /// Seed all lanes from one 64-bit key: the 32 state words are consecutive outputs of a
    /// SplitMix64 sequence started at `key` (as `seed_from_u64` does for one generator).
    pub fn from_key(key: u64) -> Self {
        let mut state = key;
        let mut next = || {
            let z = splitmix64(state);
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z
        };
        // An all-zero state would stay zero; SplitMix64 outputs make that practically
        // impossible, but keep the generator well defined anyway.
        let seeds: [[u64; 4]; LANES] = std::array::from_fn(|_| {
            let mut w = [next(), next(), next(), next()];
            if w == [0; 4] {
                w[0] = 1;
            }
            w
        });
        let s = std::array::from_fn(|w| std::array::from_fn(|j| seeds[j][w]));
        NormalLanes { s }
    }

    /// One Xoshiro256++ step of every lane.
    #[inline(always)]
    fn next_bits(&mut self) -> [u64; LANES] {
        std::array::from_fn(|j| self.next_lane(j))
    }

    /// One Xoshiro256++ step of lane `j` alone.
    #[inline(always)]
    fn next_lane(&mut self, j: usize) -> u64 {
        let [s0, s1, s2, s3] = &mut self.s;
        let out = s0[j].wrapping_add(s3[j]).rotate_left(23).wrapping_add(s0[j]);
        let t = s1[j] << 17;
        s2[j] ^= s0[j];
        s3[j] ^= s1[j];
        s1[j] ^= s2[j];
        s0[j] ^= s3[j];
        s2[j] ^= t;
        s3[j] = s3[j].rotate_left(45);
        out
    }

    /// A uniform in (0, 1], never 0 (for logarithms), from lane `j`.
    fn open_uniform(&mut self, j: usize) -> f64 {
        ((self.next_lane(j) >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64)
    }

    /// Finish a value on lane `j` whose first candidate (layer `i`, signed uniform `u`) left
    /// its rectangle: the wedge test, the tail, or a fresh candidate from the same lane.
    #[cold]
    fn slow(&mut self, j: usize, mut i: usize, mut u: f64) -> f64 {
        loop {
            let x = u * X[i];
            if x.abs() < X[i + 1] {
                return x;
            }
            if i == 0 {
                // The tail beyond R (Marsaglia 1964), with the sign of u.
                loop {
                    let a = -self.open_uniform(j).ln() / R;
                    let b = -self.open_uniform(j).ln();
                    if 2.0 * b >= a * a {
                        return if u < 0.0 { -(R + a) } else { R + a };
                    }
                }
            }
            let y = F[i + 1] + (F[i] - F[i + 1]) * ((self.next_lane(j) >> 11) as f64 * (1.0 / (1u64 << 53) as f64));
            if y < (-0.5 * x * x).exp() {
                return x;
            }
            let bits = self.next_lane(j);
            (i, u) = split(bits);
        }
    }
}

/// Layer index (low 8 bits) and a signed uniform in [-1, 1) (the top 52 bits) of one draw.
#[inline(always)]
fn split(bits: u64) -> (usize, f64) {
    let i = (bits & 0xff) as usize;
    let u = f64::from_bits(0x4000_0000_0000_0000 | (bits >> 12)) - 3.0;
    (i, u)
}

/// The shared body of every kernel: `out[k] = sd * z_k` for consecutive standard normals z.
#[inline(always)]
fn fill_body<T: Real>(out: &mut [T], sd: f64, lanes: &mut NormalLanes) {
    let mut chunks = out.chunks_exact_mut(LANES);
    let mut z = [0.0f64; LANES];
    for chunk in &mut chunks {
        round(lanes, &mut z);
        for (o, &v) in chunk.iter_mut().zip(&z) {
            *o = T::of(sd * v);
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        round(lanes, &mut z);
        for (o, &v) in rest.iter_mut().zip(&z) {
            *o = T::of(sd * v);
        }
    }
}

/// One value per lane into `z`.
#[inline(always)]
fn round(lanes: &mut NormalLanes, z: &mut [f64; LANES]) {
    let bits = lanes.next_bits();
    let mut rejected = 0u32;
    for j in 0..LANES {
        let (i, u) = split(bits[j]);
        let x = u * X[i];
        z[j] = x;
        rejected |= ((x.abs() >= X[i + 1]) as u32) << j;
    }
    while rejected != 0 {
        let j = rejected.trailing_zeros() as usize;
        rejected &= rejected - 1;
        let (i, u) = split(bits[j]);
        z[j] = lanes.slow(j, i, u);
    }
}

/// The AVX-512 kernel: the eight states live in four zmm registers, the table lookups are
/// gathers, and the accept test is one mask compare. Arithmetic and order are those of
/// [`round`], so the bits are the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fill_avx512<T: Real>(out: &mut [T], sd: f64, lanes: &mut NormalLanes) {
    use std::arch::x86_64::*;
    let load = |w: &[u64; LANES]| _mm512_loadu_epi64(w.as_ptr() as *const i64);
    let (mut s0, mut s1, mut s2, mut s3) = (
        load(&lanes.s[0]),
        load(&lanes.s[1]),
        load(&lanes.s[2]),
        load(&lanes.s[3]),
    );
    let low8 = _mm512_set1_epi64(0xff);
    let exponent = _mm512_set1_epi64(0x4000_0000_0000_0000);
    let three = _mm512_set1_pd(3.0);
    let magnitude = _mm512_castsi512_pd(_mm512_set1_epi64(i64::MAX));
    let scale = _mm512_set1_pd(sd);
    // The direct stores below write 8 values of exactly these types (checked by type, not by a
    // trait constant an outside implementation could get wrong).
    let is_f64 = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>();
    let is_f32 = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>();
    let mut z = [0.0f64; LANES];
    for chunk in out.chunks_mut(LANES) {
        let bits = _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s0, s3)), s0);
        let t = _mm512_slli_epi64::<17>(s1);
        s2 = _mm512_xor_si512(s2, s0);
        s3 = _mm512_xor_si512(s3, s1);
        s1 = _mm512_xor_si512(s1, s2);
        s0 = _mm512_xor_si512(s0, s3);
        s2 = _mm512_xor_si512(s2, t);
        s3 = _mm512_rol_epi64::<45>(s3);
        let index = _mm512_and_si512(bits, low8);
        let u = _mm512_sub_pd(
            _mm512_castsi512_pd(_mm512_or_si512(_mm512_srli_epi64::<12>(bits), exponent)),
            three,
        );
        let x_i = _mm512_i64gather_pd::<8>(index, X.as_ptr());
        let x_next = _mm512_i64gather_pd::<8>(index, X.as_ptr().add(1));
        let x = _mm512_mul_pd(u, x_i);
        let accepted = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(_mm512_and_pd(x, magnitude), x_next);
        let mut x = x;
        if accepted != 0xff {
            _mm512_storeu_pd(z.as_mut_ptr(), x);
            let store = |w: &mut [u64; LANES], v| _mm512_storeu_epi64(w.as_mut_ptr() as *mut i64, v);
            store(&mut lanes.s[0], s0);
            store(&mut lanes.s[1], s1);
            store(&mut lanes.s[2], s2);
            store(&mut lanes.s[3], s3);
            let mut b = [0u64; LANES];
            store(&mut b, bits);
            let mut rejected = !accepted as u32 & 0xff;
            while rejected != 0 {
                let j = rejected.trailing_zeros() as usize;
                rejected &= rejected - 1;
                let (i, u) = split(b[j]);
                z[j] = lanes.slow(j, i, u);
            }
            (s0, s1, s2, s3) = (
                load(&lanes.s[0]),
                load(&lanes.s[1]),
                load(&lanes.s[2]),
                load(&lanes.s[3]),
            );
            x = _mm512_loadu_pd(z.as_ptr());
        }
        let y = _mm512_mul_pd(scale, x);
        if chunk.len() == LANES && is_f64 {
            _mm512_storeu_pd(chunk.as_mut_ptr() as *mut f64, y);
        } else if chunk.len() == LANES && is_f32 {
            // Round to nearest even, as `as f32` does.
            _mm256_storeu_ps(chunk.as_mut_ptr() as *mut f32, _mm512_cvtpd_ps(y));
        } else {
            _mm512_storeu_pd(z.as_mut_ptr(), y);
            for (o, &v) in chunk.iter_mut().zip(&z) {
                *o = T::of(v);
            }
        }
    }
    let store = |w: &mut [u64; LANES], v| _mm512_storeu_epi64(w.as_mut_ptr() as *mut i64, v);
    store(&mut lanes.s[0], s0);
    store(&mut lanes.s[1], s1);
    store(&mut lanes.s[2], s2);
    store(&mut lanes.s[3], s3);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2<T: Real>(out: &mut [T], sd: f64, lanes: &mut NormalLanes) {
    fill_body(out, sd, lanes)
}

/// The baseline kernel (whatever the build target allows: SSE2 on x86-64).
pub fn fill_portable<T: Real>(out: &mut [T], sd: f64, lanes: &mut NormalLanes) {
    fill_body(out, sd, lanes)
}

/// Which kernel [`fill_normal`] uses on this machine.
pub fn kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::has_avx512() {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "portable"
}

/// Fill `out` with `sd` times consecutive standard normals of `lanes`, with the fastest
/// kernel this CPU has. The numbers do not depend on the kernel. Every call draws whole rounds
/// of eight, so filling a buffer in two calls gives other numbers than in one whenever the first
/// part is not a multiple of eight long.
pub fn fill_normal<T: Real>(out: &mut [T], sd: f64, lanes: &mut NormalLanes) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::has_avx512() {
            // SAFETY: the CPU has every feature the kernel was compiled for (checked above).
            return unsafe { fill_avx512(out, sd, lanes) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for AVX2.
            return unsafe { fill_avx2(out, sd, lanes) };
        }
    }
    fill_portable(out, sd, lanes)
}

/// Run `fill` with every kernel this CPU has (for the test that they agree).
#[cfg(test)]
fn each_kernel(mut fill: impl FnMut(&str, fn(&mut [f64], f64, &mut NormalLanes))) {
    fill("portable", fill_portable::<f64>);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was detected.
            fill("avx2", |o, s, l| unsafe { fill_avx2(o, s, l) });
        }
        if super::simd::has_avx512() {
            // SAFETY: the features were detected.
            fill("avx512", |o, s, l| unsafe { fill_avx512(o, s, l) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{ContinuousCDF, Normal};

    #[test]
    fn tables_are_a_ziggurat() {
        // Layers of equal area: x[i] (f(x[i+1]) - f(x[i])) = V for the inner layers, and the
        // base layer x[0] f(R) equals R f(R) plus the tail's area.
        let v = X[0] * F[1];
        for i in 1..256 {
            let area = X[i] * (F[i + 1] - F[i]);
            // The tables are printed to 17 digits from a float recursion: areas agree to about 1e-9.
            assert!((area / v - 1.0).abs() < 1e-8, "layer {i}: {area} vs {v}");
        }
        let tail = (std::f64::consts::PI / 2.0).sqrt() * statrs::function::erf::erfc(R / 2f64.sqrt());
        assert!(((R * F[1] + tail) / v - 1.0).abs() < 1e-8);
        assert_eq!(X[256], 0.0);
        assert_eq!(F[256], 1.0);
    }

    #[test]
    fn every_kernel_gives_the_same_bits() {
        // 100 003 values: a ragged tail, and thousands of slow-path and tail draws.
        let mut reference: Option<Vec<f64>> = None;
        each_kernel(|name, fill| {
            let mut lanes = NormalLanes::from_key(42);
            let mut out = vec![0.0f64; 100_003];
            fill(&mut out, 1.5, &mut lanes);
            let mut more = vec![0.0f64; 17];
            fill(&mut more, 1.0, &mut lanes);
            out.extend(more);
            match &reference {
                None => reference = Some(out),
                Some(r) => assert!(r.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}"),
            }
        });
        // f32 output is the f64 output rounded.
        let mut a = vec![0.0f64; 1000];
        let mut b = vec![0.0f32; 1000];
        fill_normal(&mut a, 2.0, &mut NormalLanes::from_key(7));
        fill_normal(&mut b, 2.0, &mut NormalLanes::from_key(7));
        assert!(a.iter().zip(&b).all(|(x, y)| *x as f32 == *y));
    }

    #[test]
    fn draws_are_standard_normal() {
        // 4 million draws: moments within 5 standard errors, and a Kolmogorov-Smirnov distance
        // below the 0.1% critical value 1.95 / sqrt(n).
        let n = 4_000_000usize;
        let mut z = vec![0.0f64; n];
        fill_normal(&mut z, 1.0, &mut NormalLanes::from_key(2019));
        let nf = n as f64;
        let mean = z.iter().sum::<f64>() / nf;
        let m2 = z.iter().map(|x| x * x).sum::<f64>() / nf;
        let m4 = z.iter().map(|x| x.powi(4)).sum::<f64>() / nf;
        assert!(mean.abs() < 5.0 / nf.sqrt(), "mean {mean}");
        assert!((m2 - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt(), "E z^2 {m2}");
        // var(z^4) = E z^8 - 9 = 105 - 9 = 96
        assert!((m4 - 3.0).abs() < 5.0 * 96f64.sqrt() / nf.sqrt(), "E z^4 {m4}");
        // The tail beyond R is drawn by its own path: P(|z| > R) = 2.58e-4, SE of the count 32.
        let beyond = z.iter().filter(|x| x.abs() > R).count() as f64;
        let p = statrs::function::erf::erfc(R / 2f64.sqrt());
        assert!(
            (beyond - p * nf).abs() < 5.0 * (p * nf).sqrt(),
            "{beyond} beyond R, want {}",
            p * nf
        );
        z.sort_by(f64::total_cmp);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let d = z
            .iter()
            .enumerate()
            .map(|(k, &x)| {
                let c = normal.cdf(x);
                (c - k as f64 / nf).abs().max(((k + 1) as f64 / nf - c).abs())
            })
            .fold(0.0, f64::max);
        assert!(d < 1.95 / nf.sqrt(), "KS distance {d}");
    }

    #[test]
    fn lanes_are_independent_streams() {
        // Correlation between neighbouring lanes and between consecutive rounds of one lane.
        let n = 800_000usize;
        let mut z = vec![0.0f64; n];
        fill_normal(&mut z, 1.0, &mut NormalLanes::from_key(5));
        let rounds = n / LANES;
        let corr = |a: &dyn Fn(usize) -> f64, b: &dyn Fn(usize) -> f64, m: usize| {
            (0..m).map(|r| a(r) * b(r)).sum::<f64>() / m as f64
        };
        let c01 = corr(&|r| z[r * LANES], &|r| z[r * LANES + 1], rounds);
        let c0_next = corr(&|r| z[r * LANES], &|r| z[(r + 1) * LANES], rounds - 1);
        for c in [c01, c0_next] {
            assert!(c.abs() < 5.0 / (rounds as f64).sqrt(), "correlation {c}");
        }
        // Different keys give different streams.
        let mut a = [0.0f64; 16];
        let mut b = [0.0f64; 16];
        fill_normal(&mut a, 1.0, &mut NormalLanes::from_key(1));
        fill_normal(&mut b, 1.0, &mut NormalLanes::from_key(2));
        assert_ne!(a, b);
    }
}
