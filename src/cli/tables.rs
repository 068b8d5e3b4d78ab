//! Text tables of finished jobs, one writer per kind.

use std::io::Write;

use crate::analysis::geometry::GeometryLayer;
use crate::analysis::report::RunReport;
use crate::analysis::search::CellResult;
use crate::analysis::sweep::{root_mean_square, FrontierRow, PointReport};
use crate::analysis::worst_case::WorstCaseLayer;
use crate::jobs::kinds::Output;
use crate::spec::Spec;

/// Print a finished job's output as text.
pub fn write(out: &mut impl Write, spec: &Spec, output: &Output) -> std::io::Result<()> {
    match output {
        Output::Norms(report) => write_norms(out, spec, report),
        Output::WidthSweep { points, frontier, .. } => write_sweep(out, spec, points, frontier),
        Output::MinWidth { cells, .. } => write_search(out, spec, cells),
        Output::Geometry { layers, .. } => write_geometry(out, spec, layers),
        Output::WorstCase { layers, .. } => write_worst_case(out, spec, layers),
    }
}

fn write_worst_case(out: &mut impl Write, spec: &Spec, rows: &[WorstCaseLayer]) -> std::io::Result<()> {
    writeln!(out, "widthlab run: {spec}")?;
    writeln!(out, "variance rule: {}", spec.network.variance_rule())?;
    writeln!(
        out,
        "ratio ||h^l(x)|| / ||x|| over the unit sphere, means over networks: the search's max and min beside the \
         random inputs' (rand), and the certified upper bound on the max (cert, the product of spectral norms; acc: \
         its largest ratio to the product of their lower bounds); dev = max(max - 1, 1 - min)"
    )?;
    if let Some(search) = spec.worst_case() {
        for k in crate::jobs::kinds::worst_case::k_n_values(search)
            .as_array()
            .into_iter()
            .flatten()
        {
            writeln!(
                out,
                "K_n (n = n0 = {}) as the authors' script computes it: {}",
                k["input_dim"], k["k_n"]
            )?;
        }
        writeln!(out, "(identically 1 analytically: a hemisphere is half the sphere)")?;
    }
    let mut point = usize::MAX;
    for r in rows {
        if r.point != point {
            point = r.point;
            writeln!(out)?;
            writeln!(
                out,
                "n0 = {}, m = {} (sqrt(n0/m) = {:.4}), {} networks, seed {}",
                r.input_dim, r.width, r.sqrt_input_dim_over_width, r.networks, r.seed
            )?;
            writeln!(
                out,
                "{:>5} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>9} {:>9} {:>8}",
                "layer", "max", "rand max", "min", "rand min", "cert", "acc", "dev", "rand dev", "bracket"
            )?;
        }
        writeln!(
            out,
            "{:>5} {:>9.5} {:>9.5} {:>9.5} {:>9.5} {:>10.4} {:>8.5} {:>9.5} {:>9.5} {:>8}",
            r.layer,
            r.found_max.mean,
            r.random_max.mean,
            r.found_min.mean,
            r.random_min.mean,
            r.certified_max.mean,
            r.certified_accuracy,
            r.worst_deviation.mean,
            r.random_deviation.mean,
            if r.bracket_holds { "holds" } else { "BROKEN" }
        )?;
    }
    Ok(())
}

fn write_geometry(out: &mut impl Write, spec: &Spec, rows: &[GeometryLayer]) -> std::io::Result<()> {
    writeln!(out, "widthlab run: {spec}")?;
    writeln!(out, "variance rule: {}", spec.network.variance_rule())?;
    writeln!(
        out,
        "cosine of h^l(x), h^l(y): measured over pairs x networks (std over pairs, se across networks) \
         against the arc-cosine map iterated l times; distance ratio ||h^l(x) - h^l(y)|| / ||x - y|| \
         against sqrt(q_l (1 - c_l) / (1 - c_0))"
    )?;
    let mut angle = f64::NAN;
    for r in rows {
        if r.angle_deg != angle {
            angle = r.angle_deg;
            writeln!(out)?;
            writeln!(out, "angle {} deg (c0 = {:.6})", r.angle_deg, r.initial_cosine)?;
            writeln!(
                out,
                "{:>5} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9}",
                "layer", "width", "cos", "std", "se", "pred", "z", "dist", "std", "pred"
            )?;
        }
        writeln!(
            out,
            "{:>5} {:>7} {:>9.5} {:>9.5} {:>9.5} {:>9.5} {:>7.2} {:>9.5} {:>9.5} {:>9.5}{}",
            r.layer,
            r.width,
            r.cosine.mean,
            r.cosine.std,
            r.cosine.standard_error,
            r.predicted.cosine,
            r.cosine_z,
            r.distance_ratio.mean,
            r.distance_ratio.std,
            r.predicted.distance_ratio,
            if r.undefined > 0 {
                format!("  ({} undefined cosines)", r.undefined)
            } else {
                String::new()
            }
        )?;
    }
    Ok(())
}

fn write_search(out: &mut impl Write, spec: &Spec, cells: &[CellResult]) -> std::io::Result<()> {
    writeln!(out, "widthlab run: {spec}")?;
    for c in cells {
        writeln!(out)?;
        writeln!(
            out,
            "epsilon {} depth {}: widths [{}, {}], every decision right with probability >= {}",
            c.epsilon, c.depth, c.width_range[0], c.width_range[1], c.confidence
        )?;
        writeln!(
            out,
            "{:>5} {:>9} {:>9} {:>10} {:>6} {:>17} {:>10} {:>13}",
            "probe", "width", "networks", "successes", "looks", "limits", "decision", "engine"
        )?;
        for p in &c.probes {
            writeln!(
                out,
                "{:>5} {:>9} {:>9} {:>10} {:>6} {:>17} {:>10} {:>13}{}",
                p.index,
                p.width,
                p.networks,
                p.successes,
                p.looks,
                format!("{:.4}..{:.4}", p.lower_limit, p.upper_limit),
                p.decision,
                p.engine,
                p.note.as_deref().map_or(String::new(), |n| format!("  ({n})"))
            )?;
        }
        let b = &c.bracket;
        let answer = match (b.fail, b.pass) {
            (Some(f), Some(p)) if b.exact => format!("minimal width {p} (fails at {f})"),
            (Some(f), Some(p)) => format!("minimal width in ({f}, {p}]"),
            (None, Some(p)) if b.exact => format!("minimal width {p} or below (the range's lower end passes)"),
            (None, Some(p)) => format!("minimal width at most {p}"),
            (_, None) if !b.undecided.is_empty() => format!("undecided at width {:?}", b.undecided),
            (_, None) => "no width in the range passes".into(),
        };
        writeln!(out, "answer: {answer}")?;
        for bound in &c.bounds {
            writeln!(
                out,
                "  {:<11} requires {:>10}{}",
                bound.bound,
                opt(bound.min_width),
                bound
                    .looseness
                    .map_or(String::new(), |l| format!("  ({l:.2}x the certified width)"))
            )?;
        }
    }
    Ok(())
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

/// A sweep of residual networks: per point, the output's forward ratio and the input's
/// backward ratio against their predictions.
fn write_residual_sweep(out: &mut impl Write, spec: &Spec, points: &[PointReport]) -> std::io::Result<()> {
    writeln!(out, "widthlab run: {spec}")?;
    writeln!(
        out,
        "forward ||h^B|| / ||x|| at the last block, backward ||dL/dx|| / ||dL/dh^B|| at the first; rms = root mean \
         square over every network's inputs; pred rms = sqrt(prod_k c_k) (forward exact, backward mean field), pred \
         mean its log-normal mean"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:>5} {:>7} {:>6} | {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "point", "hidden", "blocks", "fwd mean", "pred mean", "fwd rms", "pred rms", "bwd mean", "bwd rms", "pred rms"
    )?;
    for p in points {
        let Some(r) = &p.residual else { continue };
        writeln!(
            out,
            "{:>5} {:>7} {:>6} | {:>9.4} {:>9.4} {:>9.4} {:>9.4} | {:>9.4} {:>9.4} {:>9.4}",
            p.point,
            p.width,
            r.blocks,
            r.forward_mean,
            r.predicted_forward_mean,
            r.forward_rms,
            r.predicted_forward_rms,
            r.backward_mean,
            r.backward_rms,
            r.predicted_backward_rms
        )?;
    }
    Ok(())
}

fn write_sweep(
    out: &mut impl Write,
    spec: &Spec,
    points: &[PointReport],
    frontier: &[FrontierRow],
) -> std::io::Result<()> {
    if spec.network.is_residual() {
        return write_residual_sweep(out, spec, points);
    }
    writeln!(out, "widthlab run: {spec}")?;
    writeln!(out)?;
    let bounds: Vec<&str> = points
        .first()
        .map(|p| p.bounds.iter().map(|b| b.bound.as_str()).collect())
        .unwrap_or_default();
    write!(
        out,
        "{:>5} {:>8} {:>5} {:>12} | {:>9} {:>9} {:>9} {:>9} | {:>14} {:>13}",
        "point", "width", "depth", "engine", "fwd mean", "fwd max", "grad mean", "grad max", "all within", "95% CI"
    )?;
    for b in &bounds {
        write!(out, " {:>13}", format!("eps {b}"))?;
    }
    writeln!(out)?;
    for p in points {
        let w = &p.all_within;
        write!(
            out,
            "{:>5} {:>8} {:>5} {:>12} | {:>9.4} {:>9.4} {:>9.4} {:>9.4} | {:>14} {:>13}",
            p.point,
            p.width,
            p.depth,
            p.engine,
            p.forward_deviation.mean,
            p.forward_deviation.max,
            p.gradient_deviation.mean,
            p.gradient_deviation.max,
            format!("{}/{}", w.successes, w.trials),
            format!("{:.3}..{:.3}", w.ci_low, w.ci_high),
        )?;
        for b in &p.bounds {
            write!(
                out,
                " {:>13}",
                b.guaranteed_epsilon.map_or("-".into(), |g| format!("{g:.6}"))
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "frontier (smallest swept width with all layers and samples within 1 +/- {} in >= {} of networks):",
        spec.epsilon,
        1.0 - spec.delta
    )?;
    write!(out, "{:>5} {:>10} {:>10}", "depth", "empirical", "confident")?;
    for b in &bounds {
        write!(out, " {:>12}", b)?;
    }
    writeln!(out)?;
    for row in frontier {
        write!(
            out,
            "{:>5} {:>10} {:>10}",
            row.depth,
            opt(row.empirical_min_width),
            opt(row.confident_min_width)
        )?;
        for b in &row.bounds {
            write!(out, " {:>12}", opt(b.min_width))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// A residual network's `norms` table: per block, measured against the predictions of
/// docs/theory.md section 7.4.
fn write_residual(out: &mut impl Write, spec: &Spec, r: &RunReport) -> std::io::Result<()> {
    let f4 = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    writeln!(out, "widthlab run: {spec}")?;
    writeln!(out, "variance rule: {}", r.variance_rule)?;
    writeln!(
        out,
        "per block b: forward r_f = ||h^b|| / ||x||, backward r_b = ||dL/dh^(b-1)|| / ||dL/dh^B||; measured over {} \
         network(s) x {} inputs; rms = root mean square; pred rms: sqrt(prod_(k<=b) c_k) (exact second moment; \
         (1 + 1/B)^(b/2) for the proposed gains), pred mean: its log-normal mean; backward pred rms: \
         sqrt(prod_(k>=b) c_k) (mean field); c_k = 1 + m_k n_0 s_1 s_2 / 2",
        spec.trials, spec.samples
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:>5} {:>7} {:>10} | {:>9} {:>8} {:>9} | {:>9} {:>9} {:>8} | {:>9} {:>9} {:>9}",
        "block",
        "hidden",
        "factor c",
        "fwd mean",
        "fwd std",
        "fwd rms",
        "pred mean",
        "pred rms",
        "pred std",
        "bwd mean",
        "bwd rms",
        "pred rms"
    )?;
    for (l, b) in r.layers.iter().zip(1..) {
        let (pf, pg) = (&l.predicted.forward, &l.predicted.gradient);
        writeln!(
            out,
            "{:>5} {:>7} {:>10.6} | {:>9.4} {:>8.4} {:>9.4} | {:>9.4} {:>9.4} {:>8} | {:>9.4} {:>9.4} {:>9.4}",
            l.layer,
            l.width,
            spec.network.block_factor(b),
            l.forward.mean,
            l.forward.std,
            root_mean_square(&l.forward),
            pf.mean,
            pf.mean_square.sqrt(),
            f4(pf.std),
            l.gradient.mean,
            root_mean_square(&l.gradient),
            pg.mean_square.sqrt(),
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "bound checks: not applicable ({})",
        r.bound_checks
            .first()
            .map_or("no bound checks", |c| c.claims.forward.reason.as_str())
    )?;
    Ok(())
}

fn write_norms(out: &mut impl Write, spec: &Spec, r: &RunReport) -> std::io::Result<()> {
    if spec.network.is_residual() {
        return write_residual(out, spec, r);
    }
    let f4 = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    writeln!(out, "widthlab run: {spec}")?;
    writeln!(out, "variance rule: {}", r.variance_rule)?;
    let one = spec.trials == 1;
    let spread = if one {
        "over the inputs of the one network"
    } else {
        "over every network's inputs"
    };
    writeln!(
        out,
        "measured: mean, std, p05, p95 {spread}; law: the exact law's mean and std over networks and inputs{}; \
         within: its expected std within one network{}",
        if r.layers.first().is_some_and(|l| l.predicted.forward.exact) {
            ""
        } else {
            " (no exact law for this init: sqrt of the second moment, mean-field for the gradient)"
        },
        if one {
            ""
        } else {
            "; nets sd: the std of per-network means, measured and predicted"
        }
    )?;
    writeln!(out)?;
    write!(
        out,
        "{:>5} {:>7} {:>10} | {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} |",
        "layer", "width", "variance", "fwd mean", "fwd std", "fwd p05", "fwd p95", "law mean", "law std", "within",
    )?;
    if !one {
        write!(out, " {:>8} {:>8} |", "nets sd", "law")?;
    }
    writeln!(
        out,
        " {:>9} {:>8} {:>8} {:>8} | {:>6} {:>6}",
        "grad mean", "grad std", "law mean", "law std", "in f", "in g"
    )?;
    for l in &r.layers {
        let (pf, pg) = (&l.predicted.forward, &l.predicted.gradient);
        write!(
            out,
            "{:>5} {:>7} {:>10.4e} | {:>8.4} {:>8.4} {:>8.4} {:>8.4} | {:>8.4} {:>8} {:>8} |",
            l.layer,
            l.width,
            l.weight_variance,
            l.forward.mean,
            l.forward.std,
            l.forward.p05,
            l.forward.p95,
            pf.mean,
            f4(pf.std),
            f4(pf.std_within_network),
        )?;
        if !one {
            // The spread of a network's mean over N inputs: between-network plus within / N.
            let predicted = pf
                .std_between_networks
                .zip(pf.std_within_network)
                .map(|(b, w)| (b * b + w * w / spec.samples as f64).sqrt());
            write!(out, " {:>8.4} {:>8} |", l.across_trials.forward_mean.std, f4(predicted))?;
        }
        writeln!(
            out,
            " {:>9.4} {:>8.4} {:>8.4} {:>8} | {:>6.3} {:>6.3}",
            l.gradient.mean,
            l.gradient.std,
            pg.mean,
            f4(pg.std),
            l.within_epsilon.forward,
            l.within_epsilon.gradient,
        )?;
    }
    let p = &r.pooled;
    writeln!(out)?;
    writeln!(
        out,
        "pooled |1 - r|: forward mean {:.4} std {:.4} p95 {:.4} max {:.4}; gradient mean {:.4} std {:.4} p95 {:.4} max {:.4}",
        p.forward_deviation.mean,
        p.forward_deviation.std,
        p.forward_deviation.p95,
        p.forward_deviation.max,
        p.gradient_deviation.mean,
        p.gradient_deviation.std,
        p.gradient_deviation.p95,
        p.gradient_deviation.max
    )?;
    writeln!(
        out,
        "all layers and samples within 1 +/- {}: {}/{} networks (95% CI {:.3}..{:.3})",
        p.all_within.epsilon, p.all_within.successes, p.all_within.trials, p.all_within.ci_low, p.all_within.ci_high
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "bound checks: each bound's own claim at width {} (all ratios within 1 +/- its guaranteed epsilon with \
         probability >= {}), judged with one-sided {:.0}% Clopper-Pearson limits over the networks",
        r.bound_checks.first().map_or(0, |c| c.actual_width),
        1.0 - spec.delta,
        crate::analysis::verdict::CONFIDENCE * 100.0
    )?;
    writeln!(
        out,
        "{:<11} {:>9} {:>6} {:>11} {:>14} {:>14} {:>14}  reason",
        "bound", "required", "meets", "guaranteed", "forward", "gradient", "both"
    )?;
    for c in &r.bound_checks {
        writeln!(
            out,
            "{:<11} {:>9} {:>6} {:>11} {:>14} {:>14} {:>14}  {}",
            c.bound,
            c.required_width.map_or("-".into(), |w| w.to_string()),
            if c.meets_epsilon { "yes" } else { "no" },
            c.guaranteed_epsilon.map_or("-".into(), |g| format!("{g:.6}")),
            c.claims.forward.verdict,
            c.claims.gradient.verdict,
            c.claims.both.verdict,
            c.reason
        )?;
    }
    Ok(())
}
