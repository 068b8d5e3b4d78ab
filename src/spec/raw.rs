//! The serde shape of a job spec and its conversion into [`Spec`].

use serde::Deserialize;
use serde_json::Value;

use super::*;

/// A job spec as submitted (product.md). Every field but `network` has a default.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpecInput {
    kind: Option<String>,
    network: Option<NetworkInput>,
    samples: Option<i64>,
    trials: Option<i64>,
    input: Option<InputSpec>,
    epsilon: Option<f64>,
    delta: Option<f64>,
    seed: Option<u64>,
    precision: Option<String>,
    /// "dense", "exact" or "auto" (default): auto takes the exact sampler where permitted and cheaper.
    method: Option<String>,
}

/// The network: `input_dim`, then `depth` + `width` or `widths` (or, for `width_sweep`,
/// `widths_to_sweep` with `depth` or `depths_to_sweep`), and `init` or `weight_norm`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkInput {
    input_dim: Option<i64>,
    depth: Option<i64>,
    width: Option<i64>,
    widths: Option<Vec<i64>>,
    init: Option<InitInput>,
    weight_norm: Option<WeightNormInput>,
    head: Option<HeadInput>,
    widths_to_sweep: Option<Vec<i64>>,
    depths_to_sweep: Option<Vec<i64>>,
}

/// `scheme`: he (needs `fan`: in | out), glorot, glorot_paper, lecun, orthogonal (`gain`,
/// default sqrt 2), gaussian (needs `variance`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitInput {
    scheme: String,
    fan: Option<String>,
    gain: Option<f64>,
    variance: Option<f64>,
}

/// Row-wise weight normalization: `gain` "naive" | "derived" | number; `direction`
/// "gaussian" | "orthogonal".
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightNormInput {
    #[schema(value_type = Option<Object>)]
    gain: Option<Value>,
    direction: Option<String>,
}

/// The softmax cross-entropy head: `classes` (default 20).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadInput {
    classes: Option<i64>,
}

/// `distribution`: "gaussian" (default) or "sphere".
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    distribution: Option<String>,
}

/// The allowed values of a field, for messages about wrong types and unknown fields.
fn allowed(field: &str) -> &'static str {
    match field {
        "kind" => "\"norms\" or \"width_sweep\"",
        "network.widths_to_sweep" => "a non-empty array of at most max_sweep_points integers in [1, max_width]",
        "network.depths_to_sweep" => "a non-empty array of integers in [1, max_depth]",
        "network" => "an object with input_dim, depth + width or widths, init, weight_norm, head",
        "network.input_dim" => "an integer in [1, max_input_dim]",
        "network.depth" => "an integer in [1, max_depth]",
        "network.width" => "an integer in [1, max_width]",
        "network.widths" => "a non-empty array of integers in [1, max_width]",
        "network.init" => "an object {scheme, fan?, gain?, variance?}",
        "network.init.scheme" => "one of he, glorot, glorot_paper, lecun, orthogonal, gaussian",
        "network.init.fan" => "\"in\" or \"out\"",
        "network.init.gain" | "network.init.variance" => "a finite number > 0",
        "network.weight_norm" => "null or an object {gain, direction}",
        "network.weight_norm.gain" => "\"naive\", \"derived\" or a number > 0",
        "network.weight_norm.direction" => "\"gaussian\" or \"orthogonal\"",
        "network.head" => "an object {classes}",
        "network.head.classes" => "an integer in [2, max_classes]",
        "samples" => "an integer in [1, max_samples]",
        "trials" => "an integer in [1, max_trials]",
        "input" => "an object {distribution}",
        "input.distribution" => "\"gaussian\" or \"sphere\"",
        "epsilon" => "a finite number > 0",
        "delta" => "a number in the open interval (0, 1)",
        "seed" => "an integer in [0, 2^64 - 1]",
        "precision" => "\"f64\" or \"f32\"",
        "method" => "\"dense\", \"exact\" or \"auto\"",
        _ => "see the spec format in product.md",
    }
}

/// Parse and validate a job spec. A missing seed is drawn from the OS and stored.
pub fn parse_spec(value: &Value, limits: &Limits) -> Result<Spec, SpecError> {
    if !value.is_object() {
        return Err(SpecError::new("", "the job spec must be a JSON object"));
    }
    let raw: JobSpecInput = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let inner = e.into_inner().to_string();
        // serde reports an unknown field at its parent's path; name the field itself.
        if let Some(name) = inner.strip_prefix("unknown field `").and_then(|s| s.split('`').next()) {
            let full = if field.is_empty() || field == name || field.ends_with(&format!(".{name}")) {
                if field.is_empty() {
                    name.to_string()
                } else {
                    field.clone()
                }
            } else {
                format!("{field}.{name}")
            };
            return SpecError::new(
                full,
                format!(
                    "unknown field; {}",
                    inner.split(", ").skip(1).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let hint = allowed(&field);
        SpecError::new(field, format!("{inner}; allowed: {hint}"))
    })?;
    convert(raw, limits)
}

fn int_in(field: &str, v: i64, lo: usize, hi: usize) -> Result<usize, SpecError> {
    if v < lo as i64 || v > hi as i64 {
        return Err(SpecError::new(
            field,
            format!("must be an integer in [{lo}, {hi}], got {v}"),
        ));
    }
    Ok(v as usize)
}

fn positive(field: &str, v: f64, hi: f64) -> Result<f64, SpecError> {
    if !(v > 0.0 && v <= hi) {
        return Err(SpecError::new(
            field,
            format!("must be a finite number in (0, {hi}], got {v}"),
        ));
    }
    Ok(v)
}

fn unused(field: &str, present: bool, why: &str) -> Result<(), SpecError> {
    if present {
        return Err(SpecError::new(field, format!("not used {why}; remove it")));
    }
    Ok(())
}

fn convert(raw: JobSpecInput, limits: &Limits) -> Result<Spec, SpecError> {
    let kind = match raw.kind.as_deref() {
        None | Some("norms") => Kind::Norms,
        Some("width_sweep") => Kind::WidthSweep,
        Some(other) => {
            return Err(SpecError::new(
                "kind",
                format!("unknown kind {other:?}; allowed: \"norms\" or \"width_sweep\""),
            ))
        }
    };
    let mut raw_network = raw.network.ok_or_else(|| {
        SpecError::new(
            "network",
            "required: an object with input_dim, depth + width or widths, init",
        )
    })?;
    let sweep = take_sweep(kind, &mut raw_network, limits)?;
    let network = convert_network(raw_network, limits)?;
    let samples = int_in("samples", raw.samples.unwrap_or(2000), 1, limits.max_samples)?;
    let trials = int_in("trials", raw.trials.unwrap_or(1), 1, limits.max_trials)?;
    let input = match raw.input.and_then(|i| i.distribution).as_deref() {
        None | Some("gaussian") => InputDistribution::Gaussian,
        Some("sphere") => InputDistribution::Sphere,
        Some(other) => {
            return Err(SpecError::new(
                "input.distribution",
                format!("unknown distribution {other:?}; allowed: \"gaussian\" or \"sphere\""),
            ))
        }
    };
    let epsilon = raw.epsilon.unwrap_or(0.15);
    if !(epsilon > 0.0 && epsilon.is_finite() && epsilon <= 1e6) {
        return Err(SpecError::new(
            "epsilon",
            format!("must be a finite number in (0, 1e6], got {epsilon}"),
        ));
    }
    let delta = raw.delta.unwrap_or(0.05);
    if !(delta > 0.0 && delta < 1.0) {
        return Err(SpecError::new(
            "delta",
            format!("must lie in the open interval (0, 1), got {delta}"),
        ));
    }
    let precision = match raw.precision.as_deref() {
        None | Some("f64") => Precision::F64,
        Some("f32") => Precision::F32,
        Some(other) => {
            return Err(SpecError::new(
                "precision",
                format!("unknown precision {other:?}; allowed: \"f64\" or \"f32\""),
            ))
        }
    };
    let method = match raw.method.as_deref() {
        None | Some("auto") => Method::Auto,
        Some("dense") => Method::Dense,
        Some("exact") => Method::Exact,
        Some(other) => {
            return Err(SpecError::new(
                "method",
                format!("unknown method {other:?}; allowed: \"dense\", \"exact\" or \"auto\""),
            ))
        }
    };
    let seed = raw.seed.unwrap_or_else(rand::random);
    let spec = Spec {
        kind,
        network,
        samples,
        trials,
        input,
        epsilon,
        delta,
        seed,
        precision,
        method,
        sweep,
        _valid: Valid(()),
    };
    if method == Method::Exact {
        // A sweep needs every point to qualify; its widest constraint is the narrowest point.
        let points: Vec<Spec> = match &spec.sweep {
            Some(sw) => sw.points().into_iter().map(|p| spec.point_spec(p)).collect(),
            None => vec![spec.clone()],
        };
        if let Some(why) = points.iter().find_map(Spec::exact_unavailable) {
            return Err(SpecError::new(
                "method",
                format!("\"exact\" is not available for this spec: {why}; use \"dense\" or \"auto\""),
            ));
        }
    }
    check_estimate(&spec, limits)?;
    Ok(spec)
}

/// For `width_sweep`: take the grid out of the network (leaving a valid base network of the
/// first point); for `norms`: refuse the sweep fields.
fn take_sweep(kind: Kind, net: &mut NetworkInput, limits: &Limits) -> Result<Option<Sweep>, SpecError> {
    let list = |field: &str, v: &[i64], hi: usize| -> Result<Vec<usize>, SpecError> {
        if v.is_empty() || v.len() > limits.max_sweep_points {
            return Err(SpecError::new(
                field,
                format!(
                    "must hold between 1 and {} entries, got {}",
                    limits.max_sweep_points,
                    v.len()
                ),
            ));
        }
        v.iter()
            .enumerate()
            .map(|(i, &x)| int_in(&format!("{field}[{i}]"), x, 1, hi))
            .collect()
    };
    match kind {
        Kind::Norms => {
            unused(
                "network.widths_to_sweep",
                net.widths_to_sweep.is_some(),
                "by kind norms (use kind width_sweep)",
            )?;
            unused(
                "network.depths_to_sweep",
                net.depths_to_sweep.is_some(),
                "by kind norms (use kind width_sweep)",
            )?;
            Ok(None)
        }
        Kind::WidthSweep => {
            let why = "by kind width_sweep: the widths come from widths_to_sweep";
            unused("network.width", net.width.is_some(), why)?;
            unused("network.widths", net.widths.is_some(), why)?;
            let widths = list(
                "network.widths_to_sweep",
                net.widths_to_sweep.as_deref().ok_or_else(|| {
                    SpecError::new(
                        "network.widths_to_sweep",
                        "required for kind width_sweep: a non-empty array of widths",
                    )
                })?,
                limits.max_width,
            )?;
            let depths = match (net.depths_to_sweep.as_deref(), net.depth) {
                (Some(_), Some(_)) => {
                    return Err(SpecError::new(
                        "network.depth",
                        "give either depth or depths_to_sweep, not both",
                    ))
                }
                (Some(ds), None) => list("network.depths_to_sweep", ds, limits.max_depth)?,
                (None, Some(d)) => vec![int_in("network.depth", d, 1, limits.max_depth)?],
                (None, None) => {
                    return Err(SpecError::new(
                        "network.depth",
                        "required for kind width_sweep (or give depths_to_sweep)",
                    ))
                }
            };
            if widths.len() * depths.len() > limits.max_sweep_points {
                return Err(SpecError::new(
                    "network.widths_to_sweep",
                    format!(
                        "the grid has {} points; at most {} are allowed",
                        widths.len() * depths.len(),
                        limits.max_sweep_points
                    ),
                ));
            }
            net.depth = Some(depths[0] as i64);
            net.width = Some(widths[0] as i64);
            net.widths_to_sweep = None;
            net.depths_to_sweep = None;
            Ok(Some(Sweep { widths, depths }))
        }
    }
}

fn check_estimate(spec: &Spec, limits: &Limits) -> Result<(), SpecError> {
    let est = spec.estimate(limits.parallel_trials);
    if est.memory_bytes > limits.max_memory_bytes {
        let human = |b: u64| {
            if b >= 1 << 30 {
                format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
            } else {
                format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
            }
        };
        // Name the field that dominates: per-sample activations or the weights.
        let act = spec.samples as u64 * spec.network.widths.iter().map(|&w| w as u64).sum::<u64>();
        let field = if act >= spec.network.weight_count() {
            "samples"
        } else {
            "network.width"
        };
        return Err(SpecError::new(
            field,
            format!(
                "estimated memory {} exceeds the limit of {} (samples x widths = {act}, weights per network = {}); reduce samples, trials or width",
                human(est.memory_bytes),
                human(limits.max_memory_bytes),
                spec.network.weight_count()
            ),
        ));
    }
    if est.work_flops > limits.max_work {
        return Err(SpecError::new(
            "trials",
            format!(
                "estimated work {:.3e} floating-point operations exceeds the limit of {:.3e}; reduce trials, samples, width or depth",
                est.work_flops, limits.max_work
            ),
        ));
    }
    Ok(())
}

fn convert_network(raw: NetworkInput, limits: &Limits) -> Result<Network, SpecError> {
    let input_dim = int_in(
        "network.input_dim",
        raw.input_dim.ok_or_else(|| {
            SpecError::new(
                "network.input_dim",
                format!("required: an integer in [1, {}]", limits.max_input_dim),
            )
        })?,
        1,
        limits.max_input_dim,
    )?;
    let widths = match (raw.widths, raw.depth, raw.width) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(SpecError::new(
                "network.widths",
                "give either depth + width or widths, not both",
            ))
        }
        (Some(ws), None, None) => {
            if ws.is_empty() || ws.len() > limits.max_depth {
                return Err(SpecError::new(
                    "network.widths",
                    format!("must hold between 1 and {} widths, got {}", limits.max_depth, ws.len()),
                ));
            }
            ws.iter()
                .enumerate()
                .map(|(i, &w)| int_in(&format!("network.widths[{i}]"), w, 1, limits.max_width))
                .collect::<Result<Vec<_>, _>>()?
        }
        (None, depth, width) => {
            let depth = int_in(
                "network.depth",
                depth.ok_or_else(|| {
                    SpecError::new(
                        "network.depth",
                        format!("required (or give widths): an integer in [1, {}]", limits.max_depth),
                    )
                })?,
                1,
                limits.max_depth,
            )?;
            let width = int_in(
                "network.width",
                width.ok_or_else(|| {
                    SpecError::new(
                        "network.width",
                        format!("required (or give widths): an integer in [1, {}]", limits.max_width),
                    )
                })?,
                1,
                limits.max_width,
            )?;
            vec![width; depth]
        }
    };
    let weights = match (raw.init, raw.weight_norm) {
        (Some(_), Some(_)) => {
            return Err(SpecError::new(
                "network.init",
                "not used when weight_norm is set (its gain and direction define the weights); remove one",
            ))
        }
        (None, None) => {
            return Err(SpecError::new(
                "network.init",
                "required: {\"scheme\": he|glorot|glorot_paper|lecun|orthogonal|gaussian, ...} (or weight_norm)",
            ))
        }
        (Some(init), None) => Weights::Plain(convert_init(init)?),
        (None, Some(wn)) => Weights::Normalized(convert_weight_norm(wn)?),
    };
    let classes = int_in(
        "network.head.classes",
        raw.head.and_then(|h| h.classes).unwrap_or(20),
        2,
        limits.max_classes,
    )?;
    Ok(Network {
        input_dim,
        widths,
        weights,
        classes,
        _valid: Valid(()),
    })
}

fn convert_init(raw: InitInput) -> Result<Init, SpecError> {
    let scheme = raw.scheme.as_str();
    let why = format!("by scheme {scheme}");
    if scheme != "he" {
        unused("network.init.fan", raw.fan.is_some(), &why)?;
    }
    if scheme != "orthogonal" {
        unused("network.init.gain", raw.gain.is_some(), &why)?;
    }
    if scheme != "gaussian" {
        unused("network.init.variance", raw.variance.is_some(), &why)?;
    }
    Ok(match scheme {
        "he" => {
            let fan = match raw.fan.as_deref() {
                Some("in") => Fan::In,
                Some("out") => Fan::Out,
                Some(other) => {
                    return Err(SpecError::new("network.init.fan", format!("unknown fan {other:?}; allowed: \"in\" or \"out\"")))
                }
                None => {
                    return Err(SpecError::new(
                        "network.init.fan",
                        "required for he: \"out\" (N(0, 2/n_l), the paper's He) or \"in\" (N(0, 2/n_{l-1}), PyTorch's kaiming default)",
                    ))
                }
            };
            Init::He { fan }
        }
        "glorot" => Init::Glorot,
        "glorot_paper" => Init::GlorotPaper,
        "lecun" => Init::Lecun,
        "orthogonal" => Init::Orthogonal {
            gain: positive("network.init.gain", raw.gain.unwrap_or(std::f64::consts::SQRT_2), 1e3)?,
        },
        "gaussian" => Init::Gaussian {
            variance: positive(
                "network.init.variance",
                raw.variance.ok_or_else(|| {
                    SpecError::new(
                        "network.init.variance",
                        "required for gaussian: a finite number in (0, 1e6]",
                    )
                })?,
                1e6,
            )?,
        },
        other => {
            return Err(SpecError::new(
                "network.init.scheme",
                format!("unknown scheme {other:?}; allowed: he, glorot, glorot_paper, lecun, orthogonal, gaussian"),
            ))
        }
    })
}

fn convert_weight_norm(raw: WeightNormInput) -> Result<WeightNorm, SpecError> {
    let gain = match raw.gain {
        None => WeightNormGain::Derived,
        Some(Value::String(s)) if s == "naive" => WeightNormGain::Naive,
        Some(Value::String(s)) if s == "derived" => WeightNormGain::Derived,
        Some(Value::Number(n)) => WeightNormGain::Fixed(positive(
            "network.weight_norm.gain",
            n.as_f64().unwrap_or(f64::NAN),
            1e3,
        )?),
        Some(other) => {
            return Err(SpecError::new(
                "network.weight_norm.gain",
                format!("got {other}; allowed: \"naive\", \"derived\" or a number in (0, 1000]"),
            ))
        }
    };
    let direction = match raw.direction.as_deref() {
        None | Some("gaussian") => Direction::Gaussian,
        Some("orthogonal") => Direction::Orthogonal,
        Some(other) => {
            return Err(SpecError::new(
                "network.weight_norm.direction",
                format!("unknown direction {other:?}; allowed: \"gaussian\" or \"orthogonal\""),
            ))
        }
    };
    Ok(WeightNorm { gain, direction })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "network": {"input_dim": 500, "depth": 10, "width": 100, "init": {"scheme": "he", "fan": "out"}},
            "samples": 2000, "seed": 7
        })
    }

    fn err_field(v: Value) -> SpecError {
        parse_spec(&v, &Limits::default()).expect_err("spec should be refused")
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut v = base();
        let mut cur = &mut v;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = value;
        v
    }

    #[test]
    fn base_parses_with_defaults() {
        let s = parse_spec(&base(), &Limits::default()).unwrap();
        assert_eq!(s.network.widths, vec![100; 10]);
        assert_eq!(s.trials, 1);
        assert_eq!(s.network.classes, 20);
        assert_eq!(s.precision, Precision::F64);
        assert!((s.network.weight_variance(1) - 0.02).abs() < 1e-15);
        let n = s.to_json();
        assert_eq!(n["network"]["init"]["fan"], "out");
        assert_eq!(n["seed"], 7);
        // Normalized JSON parses back to the same spec.
        assert_eq!(parse_spec(&n, &Limits::default()).unwrap(), s);
        let wn = with(&["network", "init"], Value::Null);
        let mut wn = wn;
        wn["network"]["weight_norm"] = json!({"gain": 1.5, "direction": "orthogonal"});
        let s = parse_spec(&wn, &Limits::default()).unwrap();
        assert_eq!(parse_spec(&s.to_json(), &Limits::default()).unwrap(), s);
    }

    #[test]
    fn bad_specs_name_their_field() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (with(&["network", "width"], json!(0)), "network.width", "[1, 1000000]"),
            (with(&["network", "width"], json!(-3)), "network.width", "[1, 1000000]"),
            (
                with(&["network", "width"], json!(1_000_000_000)),
                "network.width",
                "[1, 1000000]",
            ),
            (with(&["network", "depth"], json!(0)), "network.depth", "[1, 1000]"),
            (with(&["epsilon"], json!(0)), "epsilon", "(0, 1e6]"),
            (with(&["epsilon"], json!(-0.1)), "epsilon", "(0, 1e6]"),
            (with(&["delta"], json!(1.0)), "delta", "(0, 1)"),
            (with(&["delta"], json!(0)), "delta", "(0, 1)"),
            (
                with(&["network", "init"], json!({"scheme": "xavier"})),
                "network.init.scheme",
                "allowed: he",
            ),
            (
                with(&["network", "init"], json!({"scheme": "he"})),
                "network.init.fan",
                "\"out\"",
            ),
            (
                with(&["network", "init"], json!({"scheme": "he", "fan": "sideways"})),
                "network.init.fan",
                "\"in\" or \"out\"",
            ),
            (
                with(&["network", "init"], json!({"scheme": "gaussian"})),
                "network.init.variance",
                "(0, 1e6]",
            ),
            (
                with(&["network", "colour"], json!("red")),
                "network.colour",
                "unknown field",
            ),
            (with(&["bogus"], json!(1)), "bogus", "unknown field"),
            (with(&["samples"], json!("many")), "samples", "[1, max_samples]"),
            (with(&["samples"], json!(2.5)), "samples", "integer"),
            (
                with(&["network", "widths"], json!([100, 0])),
                "network.widths",
                "not both",
            ),
            (with(&["precision"], json!("f16")), "precision", "\"f64\" or \"f32\""),
            (
                with(&["network", "weight_norm"], json!({"gain": "naive"})),
                "network.init",
                "remove one",
            ),
        ];
        for (spec, field, needle) in cases {
            let e = err_field(spec.clone());
            assert_eq!(e.field, field, "{spec}: {e}");
            assert!(e.message.contains(needle), "{field}: {:?} lacks {needle:?}", e.message);
        }
    }

    #[test]
    fn explicit_widths_are_checked_per_entry() {
        let mut v = base();
        let net = v["network"].as_object_mut().unwrap();
        net.remove("depth");
        net.remove("width");
        net.insert("widths".into(), json!([100, 200, 0]));
        let e = err_field(v);
        assert_eq!(e.field, "network.widths[2]");
    }

    #[test]
    fn memory_limit_refuses_before_allocating() {
        // 10^6 samples x 10 layers x 1000 wide would need tens of GiB.
        let mut v = with(&["network", "width"], json!(1000));
        v["samples"] = json!(1_000_000);
        let e = err_field(v);
        assert_eq!(e.field, "samples");
        assert!(e.message.contains("exceeds the limit"), "{}", e.message);
        // A single layer of width 10^6 has 5 * 10^11 weights: refused on memory, not allocated.
        let e = err_field(with(&["network", "width"], json!(1_000_000)));
        assert_eq!(e.field, "network.width");
    }

    #[test]
    fn the_head_counts_in_the_estimates() {
        // W_out alone is 10000 x 10^6 f64 = 80 GB: refused before anything is allocated.
        let v = json!({"network": {"input_dim": 2, "depth": 2, "width": 1_000_000, "init": {"scheme": "he", "fan": "out"},
                       "head": {"classes": 10000}}, "samples": 2});
        let e = err_field(v);
        assert!(e.message.contains("estimated memory"), "{e}");
        // And its products count as work: 1000 samples x 10000 classes x width 1000, 10^4 trials.
        let v = json!({"network": {"input_dim": 1, "depth": 1, "width": 1000, "init": {"scheme": "he", "fan": "out"},
                       "head": {"classes": 10000}}, "samples": 1000, "trials": 10000, "method": "dense"});
        let e = err_field(v);
        assert!(
            e.message.contains("estimated work") || e.message.contains("estimated memory"),
            "{e}"
        );
    }

    #[test]
    fn epsilon_above_one_is_allowed() {
        let s = parse_spec(&with(&["epsilon"], json!(2.0)), &Limits::default()).unwrap();
        assert_eq!(s.epsilon, 2.0);
    }

    #[test]
    fn missing_seed_is_drawn_and_echoed() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("seed");
        let s = parse_spec(&v, &Limits::default()).unwrap();
        assert_eq!(s.to_json()["seed"], json!(s.seed));
    }
}
