//! Run-time choice of SIMD width for the engine's elementwise passes.
//!
//! The crate is built for the baseline x86-64 target (the image must run on any host), which
//! limits auto-vectorized loops to SSE2. [`dispatch`] runs a closure inside a function compiled
//! for AVX-512 or AVX2 when the CPU has them, so loops inlined into it use the wide registers.
//! Fused multiply-add is never enabled and Rust does not contract `a * b + c`, so every path
//! computes the same bits.

/// Does this CPU have the AVX-512 subset the kernels use?
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("avx512f") && has!("avx512dq") && has!("avx512bw") && has!("avx512vl") && has!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The widest path this CPU takes.
pub fn level() -> &'static str {
    if has_avx512() {
        "avx512"
    } else if has_avx2() {
        "avx2"
    } else {
        "baseline"
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2")]
unsafe fn on_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn on_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Run `f` compiled for the widest SIMD this CPU has (mark the loops it calls
/// `#[inline(always)]` so they are compiled there too).
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the features were detected on this CPU.
            return unsafe { on_avx512(f) };
        }
        if has_avx2() {
            // SAFETY: as above.
            return unsafe { on_avx2(f) };
        }
    }
    f()
}

/// Run `f` on the baseline path only (for tests comparing paths).
#[cfg(test)]
pub fn baseline<R>(f: impl FnOnce() -> R) -> R {
    f()
}
