//! `kind: "geometry"` against the infinite-width view: at width 2000 the mean cosine of each
//! layer is the arc-cosine map iterated (within standard errors across networks); at width 20
//! the spread over pairs and networks is an order of magnitude larger, and reported.

use std::sync::atomic::AtomicBool;

use serde_json::json;
use widthlab::analysis::geometry::GeometryLayer;
use widthlab::jobs::kinds::{run_local, validate, Output};
use widthlab::spec::Limits;

/// Multiplier of the standard error in every statistical assertion.
const Z: f64 = 4.0;

fn run(width: usize, trials: usize, seed: u64) -> Vec<GeometryLayer> {
    let body = json!({"kind": "geometry",
        "network": {"input_dim": 50, "depth": 5, "width": width, "init": {"scheme": "he", "fan": "out"}},
        "pairs": 16, "angles": [30, 60, 90, 120], "trials": trials, "seed": seed});
    let limits = Limits::default();
    let spec = validate(&body, &limits).expect("valid spec").spec;
    let never = AtomicBool::new(false);
    match run_local(&spec, &limits, &|_, _| {}, &never).expect("runs").output {
        Output::Geometry { layers, .. } => layers,
        _ => panic!("a geometry job gives geometry rows"),
    }
}

#[test]
fn at_width_2000_the_mean_cosine_follows_the_arc_cosine_map() {
    let rows = run(2000, 48, 1901);
    assert_eq!(rows.len(), 4 * 6);
    let mut worst: f64 = 0.0;
    for r in rows.iter().filter(|r| r.layer > 0) {
        let se = r.cosine.standard_error;
        assert!(se > 0.0 && se < 0.01, "{r:?}");
        let z = (r.cosine.mean - r.predicted.cosine) / se;
        assert!((z - r.cosine_z).abs() < 1e-9);
        assert!(
            z.abs() <= Z,
            "angle {} layer {}: cosine {:.5} vs map {:.5} (SE {:.5})",
            r.angle_deg,
            r.layer,
            r.cosine.mean,
            r.predicted.cosine,
            se
        );
        worst = worst.max(z.abs());
        // The distance ratio's root mean square is what sqrt(q_l (1 - c_l) / (1 - c_0)) describes.
        let dse = r.distance_ratio.rms_standard_error;
        assert!(
            (r.distance_ratio.rms - r.predicted.distance_ratio).abs() <= Z * dse,
            "angle {} layer {}: distance rms {:.5} vs {:.5} (SE {:.5})",
            r.angle_deg,
            r.layer,
            r.distance_ratio.rms,
            r.predicted.distance_ratio,
            dse
        );
        assert_eq!(r.undefined, 0);
        assert_eq!(r.pairs, 16 * 48);
    }
    // The map moves the cosines far more than the tolerance: the test could fail.
    let first = rows.iter().find(|r| r.angle_deg == 90.0 && r.layer == 1).unwrap();
    assert!((first.predicted.cosine - 1.0 / std::f64::consts::PI).abs() < 1e-15);
    assert!(first.predicted.cosine / first.cosine.standard_error > 100.0);
    eprintln!("largest |z| of the mean cosine against the map: {worst:.2}");
}

#[test]
fn at_width_20_the_spread_is_visible_and_reported() {
    let narrow = run(20, 48, 1902);
    let wide = run(2000, 8, 1903);
    for (n, w) in narrow.iter().zip(&wide).filter(|(n, _)| n.layer > 0) {
        assert_eq!((n.angle_deg, n.layer), (w.angle_deg, w.layer));
        // sqrt(2000 / 20) = 10 times the spread; ask for 4.
        assert!(
            n.cosine.std > 4.0 * w.cosine.std,
            "angle {} layer {}: std {:.4} at width 20 vs {:.4} at 2000",
            n.angle_deg,
            n.layer,
            n.cosine.std,
            w.cosine.std
        );
        assert!(n.cosine.std > 0.03, "{n:?}");
        assert!(n.distance_ratio.std > 4.0 * w.distance_ratio.std, "{n:?}");
    }
}

#[test]
fn units_computed_in_any_order_give_the_same_bits() {
    use widthlab::jobs::kinds::{runner, LocalContext, RunContext};
    let body = json!({"kind": "geometry",
        "network": {"input_dim": 7, "widths": [30, 20, 25], "init": {"scheme": "he", "fan": "in"}},
        "pairs": 5, "angles": [45, 135, 180], "trials": 19, "seed": 77});
    let limits = Limits::default();
    let spec = validate(&body, &limits).expect("valid spec").spec;
    let never = AtomicBool::new(false);
    let whole = match run_local(&spec, &limits, &|_, _| {}, &never).expect("runs").output {
        Output::Geometry { layers, .. } => layers,
        _ => unreachable!(),
    };
    let kind = runner(spec.kind());
    assert_eq!(kind.units(&spec), 3, "19 networks: units of 8, 8 and 3");
    let ctx = LocalContext::new(&|_, _| {}, &never, &limits);
    for unit in (0..kind.units(&spec)).rev() {
        for row in kind.run_unit(&spec, unit, &ctx).expect("unit runs") {
            ctx.store(row).expect("stored");
        }
    }
    let reversed = match kind.finish(&spec, &ctx).expect("finishes").output {
        Output::Geometry { layers, .. } => layers,
        _ => unreachable!(),
    };
    assert_eq!(whole.len(), 3 * 4);
    for (a, b) in whole.iter().zip(&reversed) {
        assert_eq!(
            serde_json::to_string(a).unwrap(),
            serde_json::to_string(b).unwrap(),
            "angle {} layer {}",
            a.angle_deg,
            a.layer
        );
    }
    // 180 degrees: y = -x, so the first layer's units are never on for both (cosine 0 exactly)
    // and the prediction is the map's value at -1, 0.
    let opposite = whole.iter().find(|r| r.angle_deg == 180.0 && r.layer == 1).unwrap();
    assert_eq!(opposite.cosine.max, 0.0);
    assert_eq!(opposite.predicted.cosine, 0.0);
}

#[test]
fn a_geometry_job_too_large_is_refused_naming_pairs() {
    let body = json!({"kind": "geometry",
        "network": {"input_dim": 10, "depth": 2, "width": 100_000, "init": {"scheme": "he", "fan": "out"}},
        "pairs": 50_000, "angles": [30, 60, 90, 120], "trials": 1, "seed": 1});
    let e = validate(&body, &Limits::default()).expect_err("over the memory limit");
    assert_eq!(e.field, "pairs", "{e}");
    assert!(e.message.contains("estimated memory"), "{e}");
}
