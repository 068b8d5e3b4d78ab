//! The serde shape of a job spec and its conversion into [`Spec`].

use serde::Deserialize;
use serde_json::Value;

use super::*;

/// A job spec as submitted (README.md, "A job spec"). Every field but `network` has a default; `null`
/// means the default too. Unknown fields are refused (422).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpecInput {
    /// What the job computes (default "norms").
    kind: Option<Kind>,
    #[schema(value_type = NetworkInput)]
    network: Option<NetworkInput>,
    /// Inputs pushed through each network, N (default 2000).
    #[schema(minimum = 1, maximum = 1000000)]
    samples: Option<i64>,
    /// Independent networks (default 1).
    #[schema(minimum = 1, maximum = 1000000)]
    trials: Option<i64>,
    input: Option<InputSpec>,
    #[schema(schema_with = epsilon_schema)]
    epsilon: Option<OneOrMany<f64>>,
    /// The failure probability of the bounds (default 0.05).
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1)]
    delta: Option<f64>,
    /// Any unsigned 64-bit integer; when missing, one below 2^53 is drawn (so every JSON client
    /// reads it back exactly) and echoed in the job's spec and stamp.
    #[schema(minimum = 0, maximum = 18446744073709551615u64, format = "uint64")]
    seed: Option<u64>,
    /// Precision of the matrices (default "f64"): the dense engine computes in it; the Gram sampler runs its products in f32 only when B <= n0/2 and B <= width/4 (else f64); statistics are always f64.
    precision: Option<Precision>,
    /// "dense", "exact" or "auto" (default): auto takes the exact sampler where permitted and cheaper.
    method: Option<Method>,
    /// `min_width`: which ratios must stay within 1 +/- epsilon (default both).
    claim: Option<Claim>,
    /// `min_width`: probability that every decision of a cell's search is right (default 0.95).
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1)]
    confidence: Option<f64>,
    #[schema(schema_with = width_range_schema)]
    width_range: Option<Vec<i64>>,
    /// `min_width`: networks one probe may draw (default 4096).
    #[schema(minimum = 32, maximum = 1000000)]
    max_networks_per_width: Option<i64>,
    /// `min_width`: floating-point operations the job may spend (default, and at most: the
    /// server's job limit).
    #[schema(exclusive_minimum = 0)]
    max_work: Option<f64>,
    /// A name for the job, 1 to 120 characters: a label, not part of the spec (returned as the
    /// job's `name`, never in its `spec`).
    #[schema(min_length = 1, max_length = 120)]
    // Read by `labels::Labels::take`, which takes it off the body before this parser runs.
    #[allow(dead_code)]
    name: Option<String>,
    #[schema(schema_with = tags_schema)]
    #[allow(dead_code)]
    tags: Option<Vec<String>>,
    /// `geometry`: input pairs per angle and network, P (default 64); 2 x pairs x angles inputs go
    /// through each network at once (at most max_samples).
    #[schema(minimum = 1, maximum = 500000)]
    pairs: Option<i64>,
    #[schema(schema_with = angles_schema)]
    angles: Option<Vec<f64>>,
    /// `norms`: keep every per-sample ratio for GET /v1/jobs/{id}/samples and the per-layer
    /// histograms (default false); trials x samples x depth x 2 values, at most the server's
    /// max_kept_values.
    keep_samples: Option<bool>,
    /// `worst_case`: random starts of each per-layer search (default 8; besides them the best of
    /// the random inputs, and from layer 2 on the input the search reached at the layer before).
    #[schema(minimum = 1, maximum = 1024)]
    restarts: Option<i64>,
    /// `worst_case`: steps of each start (default 60; each one forward and one backward pass to
    /// the searched layer).
    #[schema(minimum = 1, maximum = 100000)]
    steps: Option<i64>,
}

fn tags_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^[A-Za-z0-9_.-]{{1,{}}}$", super::labels::MAX_TAG_CHARS))),
        )
        .max_items(Some(super::labels::MAX_TAGS))
        .description(Some(
            "Tags for the job, at most 16 (repeats dropped): labels, not part of the spec (returned as the \
             job's `tags`; GET /v1/jobs?tag= finds them).",
        ))
        .build()
}

fn angles_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Double,
                )))
                .minimum(Some(Geometry::MIN_ANGLE_DEG))
                .maximum(Some(180)),
        )
        .min_items(Some(1))
        .max_items(Some(Geometry::MAX_ANGLES))
        .description(Some(
            "geometry: the initial angles between the two inputs of a pair, in degrees, each in [0.01, 180] \
             (default [10, 30, 60, 90, 120]).",
        ))
        .build()
}

/// One value, or a list of them.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The network: `input_dim`, then `depth` + `width` or `widths` (or, for `width_sweep`,
/// `widths_to_sweep` with `depth` or `depths_to_sweep`), and `init` or `weight_norm`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkInput {
    /// n_0: required, except by kind worst_case given `input_dims_to_sweep`.
    #[schema(minimum = 1, maximum = 1000000)]
    input_dim: Option<i64>,
    #[schema(schema_with = depth_schema)]
    depth: Option<OneOrMany<i64>>,
    /// The width of every hidden layer, with `depth`.
    #[schema(minimum = 1, maximum = 1000000)]
    width: Option<i64>,
    #[schema(schema_with = widths_schema)]
    widths: Option<Vec<i64>>,
    init: Option<InitInput>,
    /// Replaces `init`.
    weight_norm: Option<WeightNormInput>,
    head: Option<HeadInput>,
    #[schema(schema_with = widths_to_sweep_schema)]
    widths_to_sweep: Option<Vec<i64>>,
    #[schema(schema_with = depths_to_sweep_schema)]
    depths_to_sweep: Option<Vec<i64>>,
    /// "plain" (default: fully connected) or "residual": blocks h^b = h^(b-1) + W_2 ReLU(W_1 h^(b-1))
    /// on a stream of width input_dim; then `blocks` replaces `depth` and `width`/`widths` are the
    /// blocks' hidden widths.
    architecture: Option<Architecture>,
    /// Residual blocks B (architecture "residual" only, instead of depth).
    #[schema(minimum = 1, maximum = 1000)]
    blocks: Option<i64>,
    #[schema(schema_with = blocks_to_sweep_schema)]
    blocks_to_sweep: Option<Vec<i64>>,
    #[schema(schema_with = input_dims_to_sweep_schema)]
    input_dims_to_sweep: Option<Vec<i64>>,
}

/// `scheme`: he (needs `fan`: in | out), glorot, glorot_paper, lecun, orthogonal (`gain`,
/// default sqrt 2), gaussian (needs `variance`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitInput {
    scheme: Scheme,
    /// Required by (and only allowed with) "he".
    fan: Option<Fan>,
    /// Only with "orthogonal" (default sqrt 2).
    #[schema(exclusive_minimum = 0, maximum = 1000)]
    gain: Option<f64>,
    /// Required by (and only allowed with) "gaussian".
    #[schema(exclusive_minimum = 0, maximum = 1000000)]
    variance: Option<f64>,
}

/// Row-wise weight normalization: `gain` "naive" | "derived" | number; `direction`
/// "gaussian" | "orthogonal".
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightNormInput {
    #[schema(schema_with = weight_norm_gain_schema)]
    gain: Option<Value>,
    /// Default "gaussian".
    direction: Option<Direction>,
}

/// The softmax cross-entropy head.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadInput {
    /// Classes C (default 20).
    #[schema(minimum = 2, maximum = 10000)]
    classes: Option<i64>,
}

/// `distribution`: "gaussian" (default) or "sphere".
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    distribution: Option<InputDistribution>,
}

/// A nullable array of integers in `[lo, hi]` with `1..=max_items` entries.
fn int_array(lo: usize, hi: usize, max_items: usize, description: &str) -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(lo))
                .maximum(Some(hi)),
        )
        .min_items(Some(1))
        .max_items(Some(max_items))
        .description(Some(description))
        .build()
}

fn widths_schema() -> utoipa::openapi::Array {
    let l = Limits::default();
    int_array(
        1,
        l.max_width,
        l.max_depth,
        "Hidden widths n_1..n_L, one per layer (instead of depth + width).",
    )
}

fn widths_to_sweep_schema() -> utoipa::openapi::Array {
    let l = Limits::default();
    int_array(
        1,
        l.max_width,
        l.max_sweep_points,
        "The widths of a width_sweep (required by it, refused by norms); the grid widths x depths \
         holds at most 64 points.",
    )
}

fn depths_to_sweep_schema() -> utoipa::openapi::Array {
    let l = Limits::default();
    int_array(
        1,
        l.max_depth,
        l.max_sweep_points,
        "The depths of a width x depth map (width_sweep only; instead of depth).",
    )
}

fn blocks_to_sweep_schema() -> utoipa::openapi::Array {
    let l = Limits::default();
    int_array(
        1,
        l.max_depth,
        l.max_sweep_points,
        "The numbers of residual blocks of a width_sweep (architecture residual only; instead of blocks).",
    )
}

fn input_dims_to_sweep_schema() -> utoipa::openapi::Array {
    let l = Limits::default();
    int_array(
        1,
        l.max_input_dim,
        l.max_sweep_points,
        "worst_case only (instead of input_dim): the input dimensions of its grid; the grid \
         input_dims x widths holds at most 64 points.",
    )
}

/// One value of `item`, or a nullable list of 1 to `max_items` of them.
fn one_or_many(item: utoipa::openapi::Object, max_items: usize, description: &str) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(item.clone())
        .item(
            ArrayBuilder::new()
                .items(item)
                .min_items(Some(1))
                .max_items(Some(max_items)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(description))
        .build()
        .into()
}

fn epsilon_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let number = ObjectBuilder::new()
        .schema_type(Type::Number)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Double,
        )))
        .exclusive_minimum(Some(0))
        .maximum(Some(1_000_000))
        .build();
    one_or_many(
        number,
        Limits::default().max_sweep_points,
        "The tolerance: every ratio within 1 +/- epsilon (default 0.15). A list (a table over epsilon) \
         only for kind min_width.",
    )
}

fn depth_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let l = Limits::default();
    let integer = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .minimum(Some(1))
        .maximum(Some(l.max_depth))
        .build();
    one_or_many(
        integer,
        l.max_sweep_points,
        "Hidden layers L, with `width` (not with `widths`). A list (a table over depth) only for kind \
         min_width.",
    )
}

fn width_range_schema() -> utoipa::openapi::Array {
    let mut a = int_array(
        1,
        Limits::default().max_width,
        2,
        "min_width: the widths searched, [lo, hi] with lo <= hi (default 1 to twice the largest bound's width).",
    );
    a.min_items = Some(2);
    a
}

fn weight_norm_gain_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["naive", "derived", "proposed"])),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Double,
                )))
                .exclusive_minimum(Some(0))
                .maximum(Some(1000)),
        )
        .item(
            utoipa::openapi::schema::ArrayBuilder::new()
                .items(
                    ObjectBuilder::new()
                        .schema_type(Type::Number)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Double,
                        )))
                        .exclusive_minimum(Some(0))
                        .maximum(Some(1000)),
                )
                .min_items(Some(2))
                .max_items(Some(2)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "\"naive\" (g = 1), \"derived\" (plain networks: g^l = sqrt(2 n_(l-1) / n_l), their default), \
             \"proposed\" (residual networks: g_1 = sqrt(2 n_0 / m), g_2 = sqrt(m / (B n_0)), their default), \
             a fixed gain in (0, 1000], or (residual only) a pair [g_1, g_2].",
        ))
        .build()
        .into()
}

/// The allowed values of a field, for messages about wrong types and unknown values.
fn allowed(field: &str) -> String {
    match field {
        "kind" => Kind::allowed(),
        "network.init.scheme" => Scheme::allowed(),
        "network.init.fan" => Fan::allowed(),
        "network.weight_norm.direction" => Direction::allowed(),
        "input.distribution" => InputDistribution::allowed(),
        "precision" => Precision::allowed(),
        "method" => Method::allowed(),
        "network.widths_to_sweep" => "a non-empty array of at most max_sweep_points integers in [1, max_width]".into(),
        "network.depths_to_sweep" => "a non-empty array of integers in [1, max_depth]".into(),
        "network" => "an object with input_dim, depth + width or widths, init, weight_norm, head".into(),
        "network.input_dim" => "an integer in [1, max_input_dim]".into(),
        "network.depth" => "an integer in [1, max_depth], or for kind min_width a list of them".into(),
        "network.width" => "an integer in [1, max_width]".into(),
        "network.widths" => "a non-empty array of integers in [1, max_width]".into(),
        "network.init" => "an object {scheme, fan?, gain?, variance?}".into(),
        "network.init.gain" | "network.init.variance" => "a finite number > 0".into(),
        "network.weight_norm" => "null or an object {gain, direction}".into(),
        "network.weight_norm.gain" => {
            "\"naive\", \"derived\" (plain), \"proposed\" (residual), a number > 0 or (residual) [g_1, g_2]".into()
        }
        "network.architecture" => Architecture::allowed(),
        "network.blocks" => "an integer in [1, max_depth] (architecture residual)".into(),
        "network.blocks_to_sweep" => "a non-empty array of integers in [1, max_depth] (architecture residual)".into(),
        "network.head" => "an object {classes}".into(),
        "network.head.classes" => "an integer in [2, max_classes]".into(),
        "samples" => "an integer in [1, max_samples]".into(),
        "trials" => "an integer in [1, max_trials]".into(),
        "input" => "an object {distribution}".into(),
        "epsilon" => "a finite number in (0, 1e6], or for kind min_width a list of them".into(),
        "delta" => "a number in the open interval (0, 1)".into(),
        "seed" => "an integer in [0, 2^64 - 1]".into(),
        "pairs" => "an integer in [1, max_samples / 2]".into(),
        "angles" => "a list of 1 to 16 angles in degrees, each in [0.01, 180]".into(),
        "keep_samples" => "true or false (kind norms only)".into(),
        "restarts" => format!("an integer in [1, {}]", WorstCase::MAX_RESTARTS),
        "steps" => format!("an integer in [1, {}]", WorstCase::MAX_STEPS),
        "network.input_dims_to_sweep" => {
            "a non-empty array of at most max_sweep_points integers in [1, max_input_dim]".into()
        }
        _ => "see the spec format in the README".into(),
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
        // An unknown name of a string enum: say which, then what is allowed (serde's own text
        // lists the names in backquotes).
        if let Some(rest) = inner.strip_prefix("unknown variant `") {
            let got = rest.split('`').next().unwrap_or_default();
            return SpecError::new(field, format!("unknown value {got:?}; allowed: {hint}"));
        }
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

fn check_epsilon(field: &str, epsilon: f64) -> Result<f64, SpecError> {
    if !(epsilon > 0.0 && epsilon.is_finite() && epsilon <= 1e6) {
        return Err(SpecError::new(
            field,
            format!("must be a finite number in (0, 1e6], got {epsilon}"),
        ));
    }
    Ok(epsilon)
}

fn convert(mut raw: JobSpecInput, limits: &Limits) -> Result<Spec, SpecError> {
    let kind = raw.kind.unwrap_or(Kind::Norms);
    let mut raw_network = raw.network.take().ok_or_else(|| {
        SpecError::new(
            "network",
            "required: an object with input_dim, depth + width or widths, init",
        )
    })?;
    let epsilons = match raw.epsilon.clone().map(OneOrMany::into_vec) {
        None => vec![0.15],
        Some(list) if list.is_empty() || list.len() > limits.max_sweep_points => {
            return Err(SpecError::new(
                "epsilon",
                format!("a list must hold between 1 and {} values", limits.max_sweep_points),
            ))
        }
        Some(list) if list.len() > 1 && kind != Kind::MinWidth => {
            return Err(SpecError::new(
                "epsilon",
                "a list of epsilons is for kind min_width; give one number",
            ))
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                check_epsilon(
                    &if list.len() > 1 {
                        format!("epsilon[{i}]")
                    } else {
                        "epsilon".into()
                    },
                    e,
                )
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let architecture = residual_fields(kind, &mut raw_network, limits)?;
    let task = take_task(kind, &mut raw_network, limits)?;
    let network = convert_network(raw_network, architecture, limits)?;
    let task = match task {
        Task::Geometry(_) => Task::Geometry(convert_geometry(&mut raw, &network, limits)?),
        Task::WorstCase(grid) => Task::WorstCase(convert_worst_case(&mut raw, grid)?),
        other => {
            unused(
                "pairs",
                raw.pairs.is_some(),
                &format!("by kind {kind} (it is a field of kind geometry)"),
            )?;
            unused(
                "angles",
                raw.angles.is_some(),
                &format!("by kind {kind} (it is a field of kind geometry)"),
            )?;
            for (field, present) in [("restarts", raw.restarts.is_some()), ("steps", raw.steps.is_some())] {
                unused(
                    field,
                    present,
                    &format!("by kind {kind} (it is a field of kind worst_case)"),
                )?;
            }
            other
        }
    };
    // A geometry job's batch is its pairs' inputs (which the memory estimate counts as samples).
    let samples = match &task {
        Task::Geometry(g) => g.batch(),
        Task::WorstCase(_) => int_in("samples", raw.samples.unwrap_or(1000), 1, limits.max_samples)?,
        _ => int_in("samples", raw.samples.unwrap_or(2000), 1, limits.max_samples)?,
    };
    let trials = match (&task, raw.trials) {
        (Task::MinWidth(_), Some(_)) => return Err(SpecError::new(
            "trials",
            "not used by kind min_width: the search draws networks until it can decide (see max_networks_per_width)",
        )),
        (_, t) => int_in("trials", t.unwrap_or(1), 1, limits.max_trials)?,
    };
    let input = raw
        .input
        .as_ref()
        .and_then(|i| i.distribution)
        .unwrap_or(InputDistribution::Gaussian);
    let delta = raw.delta.unwrap_or(0.05);
    if !(delta > 0.0 && delta < 1.0) {
        return Err(SpecError::new(
            "delta",
            format!("must lie in the open interval (0, 1), got {delta}"),
        ));
    }
    let search_fields = [
        ("claim", raw.claim.is_some()),
        ("confidence", raw.confidence.is_some()),
        ("width_range", raw.width_range.is_some()),
        ("max_networks_per_width", raw.max_networks_per_width.is_some()),
        ("max_work", raw.max_work.is_some()),
    ];
    let task = match task {
        Task::MinWidth(partial) => Task::MinWidth(MinWidthSearch {
            depths: partial.depths,
            ..convert_search(&raw, epsilons.clone(), &network, limits)?
        }),
        other => {
            for (field, present) in search_fields {
                unused(
                    field,
                    present,
                    &format!("by kind {kind} (it is a field of kind min_width)"),
                )?;
            }
            other
        }
    };
    let keep_samples = raw.keep_samples.unwrap_or(false);
    if raw.keep_samples.is_some() && kind != Kind::Norms {
        return Err(SpecError::new(
            "keep_samples",
            format!("not used by kind {kind} (it is a field of kind norms); remove it"),
        ));
    }
    let spec = Spec {
        task,
        network,
        samples,
        trials,
        keep_samples,
        input,
        epsilon: epsilons[0],
        delta,
        seed: raw.seed.unwrap_or_else(draw_seed),
        precision: raw.precision.unwrap_or(Precision::F64),
        method: match kind {
            Kind::Geometry | Kind::WorstCase => Method::Dense,
            _ => raw.method.unwrap_or(Method::Auto),
        },
        first_trial: 0,
        _valid: Valid(()),
    };
    if spec.keep_samples && spec.kept_values() > limits.max_kept_values {
        return Err(SpecError::new(
            "keep_samples",
            format!(
                "would keep trials x samples x depth x 2 = {} ratios; this server keeps at most {} \
                 (max_kept_values): lower trials or samples, or drop keep_samples",
                spec.kept_values(),
                limits.max_kept_values
            ),
        ));
    }
    Ok(spec)
}

/// The fields of a `min_width` job.
fn convert_search(
    raw: &JobSpecInput,
    epsilons: Vec<f64>,
    network: &Network,
    limits: &Limits,
) -> Result<MinWidthSearch, SpecError> {
    let claim = raw.claim.unwrap_or(Claim::Both);
    if claim.gradient() && matches!(network.weights, Weights::Normalized(_)) {
        return Err(SpecError::new(
            "claim",
            "the gradient claim is about plain inits: under weight norm the gradient ratio is normalized by the \
             gain and is not expected near 1 for every gain; use claim \"forward\"",
        ));
    }
    let confidence = raw.confidence.unwrap_or(0.95);
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(SpecError::new(
            "confidence",
            format!("must lie in the open interval (0, 1), got {confidence}"),
        ));
    }
    let width_range = match raw.width_range.as_deref() {
        None => None,
        Some([lo, hi]) => {
            let lo = int_in("width_range[0]", *lo, 1, limits.max_width)? as u64;
            let hi = int_in("width_range[1]", *hi, 1, limits.max_width)? as u64;
            if lo > hi {
                return Err(SpecError::new(
                    "width_range",
                    format!("[lo, hi] with lo <= hi, got [{lo}, {hi}]"),
                ));
            }
            Some((lo, hi))
        }
        Some(other) => {
            return Err(SpecError::new(
                "width_range",
                format!("two integers [lo, hi], got {} values", other.len()),
            ))
        }
    };
    let max_networks_per_width = int_in(
        "max_networks_per_width",
        raw.max_networks_per_width.unwrap_or(4096),
        crate::spec::MIN_NETWORKS_PER_WIDTH,
        limits.max_trials,
    )? as u64;
    let max_work = raw.max_work.unwrap_or(limits.max_work);
    if !(max_work > 0.0 && max_work <= limits.max_work) {
        return Err(SpecError::new(
            "max_work",
            format!(
                "must be a number of floating-point operations in (0, {:.3e}] (this server's job limit), got {max_work}",
                limits.max_work
            ),
        ));
    }
    Ok(MinWidthSearch {
        epsilons,
        depths: vec![network.depth()],
        claim,
        confidence,
        width_range,
        max_networks_per_width,
        max_work,
    })
}

/// The fields of a `geometry` job; refuses the fields it does not use (they are taken out of
/// `raw`, so the defaults of the other kinds apply to them).
fn convert_geometry(raw: &mut JobSpecInput, network: &Network, limits: &Limits) -> Result<Geometry, SpecError> {
    let why = "by kind geometry (its inputs are the pairs: see pairs and angles)";
    unused("samples", raw.samples.is_some(), why)?;
    unused("input", raw.input.is_some(), why)?;
    unused(
        "epsilon",
        raw.epsilon.is_some(),
        "by kind geometry (it reports cosines and distances, no tolerance)",
    )?;
    unused(
        "delta",
        raw.delta.is_some(),
        "by kind geometry (it reports cosines and distances, no bound)",
    )?;
    unused(
        "method",
        raw.method.is_some(),
        "by kind geometry (it always runs the dense engine)",
    )?;
    if network.input_dim < 2 {
        return Err(SpecError::new(
            "network.input_dim",
            "kind geometry needs input_dim >= 2 (two inputs at an angle span a plane)",
        ));
    }
    let angles_deg = match raw.angles.take() {
        None => Geometry::DEFAULT_ANGLES.to_vec(),
        Some(list) if list.is_empty() || list.len() > Geometry::MAX_ANGLES => {
            return Err(SpecError::new(
                "angles",
                format!(
                    "must hold between 1 and {} angles, got {}",
                    Geometry::MAX_ANGLES,
                    list.len()
                ),
            ))
        }
        Some(list) => {
            for (i, &a) in list.iter().enumerate() {
                if !(Geometry::MIN_ANGLE_DEG..=180.0).contains(&a) {
                    return Err(SpecError::new(
                        format!("angles[{i}]"),
                        format!(
                            "must be an angle in degrees in [{}, 180] (below it the two inputs of a pair are \
                             equal to rounding and their distance ratio 0/0), got {a}",
                            Geometry::MIN_ANGLE_DEG
                        ),
                    ));
                }
            }
            list
        }
    };
    let max_pairs = limits.max_samples / (2 * angles_deg.len());
    let pairs = raw.pairs.unwrap_or(64.min(max_pairs.max(1) as i64));
    if pairs < 1 || pairs as u64 > max_pairs as u64 {
        return Err(SpecError::new(
            "pairs",
            format!(
                "must be an integer in [1, {max_pairs}] ({} inputs per network with {} angles: at most max_samples = {}), got {pairs}",
                2 * pairs.max(0) as u64 * angles_deg.len() as u64,
                angles_deg.len(),
                limits.max_samples
            ),
        ));
    }
    Ok(Geometry {
        pairs: pairs as usize,
        angles_deg,
    })
}

/// The fields of a `worst_case` job (its grid came out of the network); refuses the fields it
/// does not use (taken out of `raw`, so the other kinds' defaults apply to them).
fn convert_worst_case(raw: &mut JobSpecInput, grid: WorstCase) -> Result<WorstCase, SpecError> {
    unused(
        "input",
        raw.input.take().is_some(),
        "by kind worst_case (its random inputs are uniform on the unit sphere: the ratio does not depend on the norm)",
    )?;
    unused(
        "epsilon",
        raw.epsilon.is_some(),
        "by kind worst_case (it reports extremes and deviations, no tolerance)",
    )?;
    unused(
        "delta",
        raw.delta.is_some(),
        "by kind worst_case (it reports extremes and deviations, no bound)",
    )?;
    unused(
        "method",
        raw.method.take().is_some(),
        "by kind worst_case (it always draws the weight matrices)",
    )?;
    if raw.precision == Some(Precision::F32) {
        return Err(SpecError::new(
            "precision",
            "kind worst_case computes in f64 only; allowed: \"f64\" (or leave it out)",
        ));
    }
    let restarts = int_in(
        "restarts",
        raw.restarts.unwrap_or(WorstCase::DEFAULT_RESTARTS as i64),
        1,
        WorstCase::MAX_RESTARTS,
    )?;
    let steps = int_in(
        "steps",
        raw.steps.unwrap_or(WorstCase::DEFAULT_STEPS as i64),
        1,
        WorstCase::MAX_STEPS,
    )?;
    Ok(WorstCase {
        restarts,
        steps,
        ..grid
    })
}

/// A seed for a spec without one: uniform below 2^53, so that every JSON client (a double in
/// JavaScript, say) reads the echoed seed back exactly.
fn draw_seed() -> u64 {
    rand::random::<u64>() >> 11
}

/// The architecture, with the residual spelling of the depth (`blocks`, `blocks_to_sweep`)
/// checked here and moved into `depth` and `depths_to_sweep` (valid by then), so the shared
/// code below reads one spelling; plain networks refuse the residual fields.
fn residual_fields(kind: Kind, net: &mut NetworkInput, limits: &Limits) -> Result<Architecture, SpecError> {
    let architecture = net.architecture.unwrap_or(Architecture::Plain);
    if architecture == Architecture::Plain {
        let why = "by architecture plain (it is a field of architecture \"residual\"; plain networks take depth)";
        unused("network.blocks", net.blocks.is_some(), why)?;
        unused("network.blocks_to_sweep", net.blocks_to_sweep.is_some(), why)?;
        return Ok(architecture);
    }
    if !matches!(kind, Kind::Norms | Kind::WidthSweep) {
        return Err(SpecError::new(
            "network.architecture",
            format!("kind {kind} takes plain networks only; architecture \"residual\" runs with kinds norms and width_sweep"),
        ));
    }
    let why = "by architecture residual: its depth is blocks (the number of residual blocks)";
    unused("network.depth", net.depth.is_some(), why)?;
    unused(
        "network.depths_to_sweep",
        net.depths_to_sweep.is_some(),
        "by architecture residual: give blocks_to_sweep",
    )?;
    let blocks = net
        .blocks
        .map(|b| int_in("network.blocks", b, 1, limits.max_depth))
        .transpose()?;
    match kind {
        Kind::WidthSweep => {
            let list = match (blocks, net.blocks_to_sweep.take()) {
                (Some(_), Some(_)) => {
                    return Err(SpecError::new(
                        "network.blocks",
                        "give either blocks or blocks_to_sweep, not both",
                    ))
                }
                (Some(b), None) => vec![b],
                (None, Some(list)) => {
                    if list.is_empty() || list.len() > limits.max_sweep_points {
                        return Err(SpecError::new(
                            "network.blocks_to_sweep",
                            format!(
                                "must hold between 1 and {} entries, got {}",
                                limits.max_sweep_points,
                                list.len()
                            ),
                        ));
                    }
                    list.iter()
                        .enumerate()
                        .map(|(i, &b)| int_in(&format!("network.blocks_to_sweep[{i}]"), b, 1, limits.max_depth))
                        .collect::<Result<Vec<_>, _>>()?
                }
                (None, None) => {
                    return Err(SpecError::new(
                        "network.blocks",
                        format!(
                            "required for kind width_sweep with architecture residual (or give blocks_to_sweep): an integer in [1, {}]",
                            limits.max_depth
                        ),
                    ))
                }
            };
            match list.as_slice() {
                [one] => net.depth = Some(OneOrMany::One(*one as i64)),
                many => net.depths_to_sweep = Some(many.iter().map(|&b| b as i64).collect()),
            }
        }
        _ => {
            unused(
                "network.blocks_to_sweep",
                net.blocks_to_sweep.is_some(),
                &format!("by kind {kind} (use kind width_sweep)"),
            )?;
            match (blocks, net.widths.is_some()) {
                (Some(_), true) => {
                    return Err(SpecError::new(
                        "network.widths",
                        "give either blocks + width or widths (one hidden width per block), not both",
                    ))
                }
                (None, false) => {
                    return Err(SpecError::new(
                        "network.blocks",
                        format!(
                            "required for architecture residual (or give widths, one hidden width per block): an integer in [1, {}]",
                            limits.max_depth
                        ),
                    ))
                }
                (Some(b), false) => net.depth = Some(OneOrMany::One(b as i64)),
                (None, true) => {}
            }
        }
    }
    Ok(architecture)
}

/// For `width_sweep`: take the grid out of the network (leaving a valid base network of the
/// first point); for `norms`: refuse the sweep fields.
fn take_task(kind: Kind, net: &mut NetworkInput, limits: &Limits) -> Result<Task, SpecError> {
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
    // A list of depths is for min_width only.
    let one_depth = |net: &NetworkInput| -> Result<Option<i64>, SpecError> {
        match &net.depth {
            None => Ok(None),
            Some(OneOrMany::One(d)) => Ok(Some(*d)),
            Some(OneOrMany::Many(_)) => Err(SpecError::new(
                "network.depth",
                format!("a list of depths is for kind min_width; kind {kind} takes one integer"),
            )),
        }
    };
    if kind != Kind::WorstCase {
        unused(
            "network.input_dims_to_sweep",
            net.input_dims_to_sweep.is_some(),
            &format!("by kind {kind} (it is a field of kind worst_case)"),
        )?;
    }
    match kind {
        Kind::WorstCase => {
            let depth = one_depth(net)?.ok_or_else(|| {
                SpecError::new(
                    "network.depth",
                    format!("required for kind worst_case: an integer in [1, {}]", limits.max_depth),
                )
            })?;
            int_in("network.depth", depth, 1, limits.max_depth)?;
            unused(
                "network.widths",
                net.widths.is_some(),
                "by kind worst_case (every layer has the same width: give width or widths_to_sweep)",
            )?;
            unused(
                "network.depths_to_sweep",
                net.depths_to_sweep.is_some(),
                "by kind worst_case (one depth: give depth)",
            )?;
            let widths = match (net.widths_to_sweep.take(), net.width) {
                (Some(_), Some(_)) => {
                    return Err(SpecError::new(
                        "network.width",
                        "give either width or widths_to_sweep, not both",
                    ))
                }
                (Some(ws), None) => list("network.widths_to_sweep", &ws, limits.max_width)?,
                (None, Some(w)) => vec![int_in("network.width", w, 1, limits.max_width)?],
                (None, None) => {
                    return Err(SpecError::new(
                        "network.width",
                        format!(
                            "required for kind worst_case (or give widths_to_sweep): an integer in [1, {}]",
                            limits.max_width
                        ),
                    ))
                }
            };
            let input_dims = match (net.input_dims_to_sweep.take(), net.input_dim) {
                (Some(_), Some(_)) => {
                    return Err(SpecError::new(
                        "network.input_dim",
                        "give either input_dim or input_dims_to_sweep, not both",
                    ))
                }
                (Some(ds), None) => list("network.input_dims_to_sweep", &ds, limits.max_input_dim)?,
                (None, Some(d)) => vec![int_in("network.input_dim", d, 1, limits.max_input_dim)?],
                (None, None) => {
                    return Err(SpecError::new(
                        "network.input_dim",
                        format!(
                            "required for kind worst_case (or give input_dims_to_sweep): an integer in [1, {}]",
                            limits.max_input_dim
                        ),
                    ))
                }
            };
            if widths.len() * input_dims.len() > limits.max_sweep_points {
                return Err(SpecError::new(
                    "network.widths_to_sweep",
                    format!(
                        "the grid input_dims x widths has {} points; at most {} are allowed",
                        widths.len() * input_dims.len(),
                        limits.max_sweep_points
                    ),
                ));
            }
            // The network of the first point stands in; every point sets its own.
            net.width = Some(widths[0] as i64);
            net.input_dim = Some(input_dims[0] as i64);
            Ok(Task::WorstCase(WorstCase {
                input_dims,
                widths,
                restarts: 0,
                steps: 0,
            }))
        }
        Kind::MinWidth => {
            let why = "by kind min_width: the width is what it searches (see width_range)";
            unused("network.width", net.width.is_some(), why)?;
            unused("network.widths", net.widths.is_some(), why)?;
            unused("network.widths_to_sweep", net.widths_to_sweep.is_some(), why)?;
            unused(
                "network.depths_to_sweep",
                net.depths_to_sweep.is_some(),
                "by kind min_width: give depth as an integer or a list",
            )?;
            let depths = match net.depth.clone() {
                None => {
                    return Err(SpecError::new(
                        "network.depth",
                        "required for kind min_width: an integer or a list of them",
                    ))
                }
                Some(d) => list("network.depth", &d.into_vec(), limits.max_depth)?,
            };
            // The network's own width is a stand-in: every probe sets its width.
            net.depth = Some(OneOrMany::One(depths[0] as i64));
            net.width = Some(1);
            Ok(Task::MinWidth(MinWidthSearch {
                epsilons: Vec::new(),
                depths,
                claim: Claim::Both,
                confidence: 0.95,
                width_range: None,
                max_networks_per_width: 0,
                max_work: 0.0,
            }))
        }
        Kind::Geometry => {
            one_depth(net)?;
            unused(
                "network.widths_to_sweep",
                net.widths_to_sweep.is_some(),
                "by kind geometry (one network configuration)",
            )?;
            unused(
                "network.depths_to_sweep",
                net.depths_to_sweep.is_some(),
                "by kind geometry (one network configuration)",
            )?;
            Ok(Task::Geometry(Geometry {
                pairs: 0,
                angles_deg: Vec::new(),
            }))
        }
        Kind::Norms => {
            one_depth(net)?;
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
            Ok(Task::Norms)
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
            let depths = match (net.depths_to_sweep.as_deref(), one_depth(net)?) {
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
            net.depth = Some(OneOrMany::One(depths[0] as i64));
            net.width = Some(widths[0] as i64);
            net.widths_to_sweep = None;
            net.depths_to_sweep = None;
            Ok(Task::WidthSweep(Sweep { widths, depths }))
        }
    }
}

fn convert_network(raw: NetworkInput, architecture: Architecture, limits: &Limits) -> Result<Network, SpecError> {
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
    let depth = match raw.depth {
        None => None,
        Some(OneOrMany::One(d)) => Some(d),
        Some(OneOrMany::Many(_)) => {
            return Err(SpecError::new(
                "network.depth",
                "a list of depths is for kind min_width; give one integer",
            ))
        }
    };
    let widths = match (raw.widths, depth, raw.width) {
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
        (None, Some(wn)) => Weights::Normalized(convert_weight_norm(wn, architecture)?),
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
        architecture,
        weights,
        classes,
        _valid: Valid(()),
    })
}

fn convert_init(raw: InitInput) -> Result<Init, SpecError> {
    let scheme = raw.scheme;
    let why = format!("by scheme {scheme}");
    if scheme != Scheme::He {
        unused("network.init.fan", raw.fan.is_some(), &why)?;
    }
    if scheme != Scheme::Orthogonal {
        unused("network.init.gain", raw.gain.is_some(), &why)?;
    }
    if scheme != Scheme::Gaussian {
        unused("network.init.variance", raw.variance.is_some(), &why)?;
    }
    Ok(match scheme {
        Scheme::He => Init::He {
            fan: raw.fan.ok_or_else(|| {
                SpecError::new(
                    "network.init.fan",
                    "required for he: \"out\" (N(0, 2/n_l), the paper's He) or \"in\" (N(0, 2/n_{l-1}), PyTorch's kaiming default)",
                )
            })?,
        },
        Scheme::Glorot => Init::Glorot,
        Scheme::GlorotPaper => Init::GlorotPaper,
        Scheme::Lecun => Init::Lecun,
        Scheme::Orthogonal => Init::Orthogonal {
            gain: positive("network.init.gain", raw.gain.unwrap_or(std::f64::consts::SQRT_2), 1e3)?,
        },
        Scheme::Gaussian => Init::Gaussian {
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
    })
}

fn convert_weight_norm(raw: WeightNormInput, architecture: Architecture) -> Result<WeightNorm, SpecError> {
    let field = "network.weight_norm.gain";
    let number = |field: &str, v: &Value| positive(field, v.as_f64().unwrap_or(f64::NAN), 1e3);
    let residual = architecture == Architecture::Residual;
    let gain = match raw.gain {
        None => WeightNormGain::Derived,
        Some(Value::String(s)) if s == "naive" => WeightNormGain::Naive,
        Some(Value::String(s)) if s == "derived" && !residual => WeightNormGain::Derived,
        Some(Value::String(s)) if s == "proposed" && residual => WeightNormGain::Derived,
        Some(Value::String(s)) if s == "derived" => return Err(SpecError::new(
            field,
            "residual blocks take \"proposed\" (g_1 = sqrt(2 n_0 / m), g_2 = sqrt(m / (B n_0))), \"naive\", a number \
                 in (0, 1000] or a pair [g_1, g_2]; \"derived\" is the gain of plain networks",
        )),
        Some(Value::String(s)) if s == "proposed" => {
            return Err(SpecError::new(
                field,
                "\"proposed\" is the gain of residual blocks (architecture \"residual\"); plain networks take \
                 \"derived\", \"naive\" or a number in (0, 1000]",
            ))
        }
        Some(Value::Number(n)) => WeightNormGain::Fixed(number(field, &Value::Number(n))?),
        Some(Value::Array(pair)) if residual => match pair.as_slice() {
            [g1, g2] => WeightNormGain::Pair(number(&format!("{field}[0]"), g1)?, number(&format!("{field}[1]"), g2)?),
            other => {
                return Err(SpecError::new(
                    field,
                    format!("a pair [g_1, g_2] of numbers in (0, 1000], got {} values", other.len()),
                ))
            }
        },
        Some(other) => {
            let allowed = if residual {
                "\"proposed\", \"naive\", a number in (0, 1000] or a pair [g_1, g_2]"
            } else {
                "\"naive\", \"derived\" or a number in (0, 1000]"
            };
            return Err(SpecError::new(field, format!("got {other}; allowed: {allowed}")));
        }
    };
    Ok(WeightNorm {
        gain,
        direction: raw.direction.unwrap_or(Direction::Gaussian),
    })
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
    fn residual_specs_parse_back_from_their_normal_form() {
        let l = Limits::default();
        let specs = [
            json!({"network": {"input_dim": 30, "architecture": "residual", "blocks": 4, "width": 20,
                               "weight_norm": {"gain": "proposed"}}, "seed": 1}),
            json!({"network": {"input_dim": 30, "architecture": "residual", "widths": [20, 10],
                               "weight_norm": {"gain": [1.5, 0.25], "direction": "orthogonal"}}, "seed": 2}),
            json!({"network": {"input_dim": 30, "architecture": "residual", "blocks": 3, "width": 20,
                               "init": {"scheme": "he", "fan": "in"}}, "seed": 3}),
            json!({"kind": "width_sweep", "network": {"input_dim": 30, "architecture": "residual",
                   "widths_to_sweep": [10, 20], "blocks_to_sweep": [1, 8], "weight_norm": {"gain": "naive"}}, "seed": 4}),
            json!({"kind": "width_sweep", "network": {"input_dim": 30, "architecture": "residual",
                   "widths_to_sweep": [10], "blocks": 6, "weight_norm": {"gain": 2.0}}, "seed": 5}),
        ];
        for v in specs {
            let s = parse_spec(&v, &l).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert!(s.network.is_residual());
            let n = s.to_json();
            assert_eq!(n["network"]["architecture"], "residual");
            assert_eq!(parse_spec(&n, &l).unwrap(), s, "{n}");
        }
        // The proposed gains: g_1 = sqrt(2 n_0 / m), g_2 = sqrt(m / (B n_0)); plain networks keep
        // their JSON (no architecture key).
        let s = parse_spec(&specs_first(), &l).unwrap();
        let (g1, g2) = s.network.block_gains(1).unwrap();
        assert!((g1 - (60.0f64 / 20.0).sqrt()).abs() < 1e-15 && (g2 - (20.0f64 / 120.0).sqrt()).abs() < 1e-15);
        assert!((s.network.block_factor(1) - 1.25).abs() < 1e-15);
        assert_eq!(s.network.weight_count(), 4 * 2 * 30 * 20);
        assert!(parse_spec(&base(), &l).unwrap().to_json()["network"]
            .get("architecture")
            .is_none());
    }

    fn specs_first() -> Value {
        json!({"network": {"input_dim": 30, "architecture": "residual", "blocks": 4, "width": 20,
                           "weight_norm": {"gain": "proposed"}}, "seed": 1})
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
    fn a_worst_case_spec_round_trips_through_its_json() {
        let v = json!({"kind": "worst_case",
            "network": {"input_dims_to_sweep": [3, 30], "widths_to_sweep": [10, 20, 40], "depth": 4,
                        "weight_norm": {"gain": "derived"}},
            "samples": 70, "trials": 5, "restarts": 6, "steps": 9, "seed": 3});
        let s = parse_spec(&v, &Limits::default()).unwrap();
        let w = s.worst_case().expect("a worst_case spec");
        assert_eq!(
            (w.input_dims.clone(), w.widths.clone()),
            (vec![3, 30], vec![10, 20, 40])
        );
        assert_eq!((w.restarts, w.steps, s.samples, s.trials), (6, 9, 70, 5));
        assert_eq!(w.points().len(), 6);
        assert_eq!(w.points()[4].input_dim, 30);
        assert_eq!(w.points()[4].width, 20);
        assert_eq!(parse_spec(&s.to_json(), &Limits::default()).unwrap(), s);
        // Defaults: 1000 random inputs, 8 restarts, 60 steps; one input_dim and one width.
        let v = json!({"kind": "worst_case",
            "network": {"input_dim": 5, "width": 7, "depth": 2, "init": {"scheme": "he", "fan": "out"}}});
        let s = parse_spec(&v, &Limits::default()).unwrap();
        let w = s.worst_case().unwrap();
        assert_eq!((w.restarts, w.steps, s.samples), (8, 60, 1000));
        assert_eq!(parse_spec(&s.to_json(), &Limits::default()).unwrap(), s);
    }

    #[test]
    fn epsilon_above_one_is_allowed() {
        let s = parse_spec(&with(&["epsilon"], json!(2.0)), &Limits::default()).unwrap();
        assert_eq!(s.epsilon, 2.0);
    }

    /// The ranges the OpenAPI document states (literals in the schema attributes) are the
    /// parser's (`Limits::default()`, which no server setting changes).
    #[test]
    fn the_openapi_ranges_are_the_parsers() {
        fn props<T: utoipa::PartialSchema>() -> Value {
            serde_json::to_value(T::schema()).unwrap()["properties"].clone()
        }
        let l = Limits::default();
        let range = |p: &Value| (p["minimum"].as_u64(), p["maximum"].as_u64());
        let spec = props::<JobSpecInput>();
        let net = props::<NetworkInput>();
        let hi = |n: usize| Some(n as u64);
        assert_eq!(range(&spec["samples"]), (Some(1), hi(l.max_samples)));
        assert_eq!(range(&spec["trials"]), (Some(1), hi(l.max_trials)));
        assert_eq!(range(&net["input_dim"]), (Some(1), hi(l.max_input_dim)));
        // depth is one value or (min_width) a list of them: the same range either way.
        assert_eq!(range(&net["depth"]["oneOf"][0]), (Some(1), hi(l.max_depth)));
        assert_eq!(range(&net["depth"]["oneOf"][1]["items"]), (Some(1), hi(l.max_depth)));
        assert_eq!(range(&net["width"]), (Some(1), hi(l.max_width)));
        assert_eq!(range(&net["widths"]["items"]), (Some(1), hi(l.max_width)));
        assert_eq!(net["widths"]["maxItems"], json!(l.max_depth));
        assert_eq!(range(&net["widths_to_sweep"]["items"]), (Some(1), hi(l.max_width)));
        assert_eq!(net["widths_to_sweep"]["maxItems"], json!(l.max_sweep_points));
        assert_eq!(range(&net["depths_to_sweep"]["items"]), (Some(1), hi(l.max_depth)));
        assert_eq!(range(&props::<HeadInput>()["classes"]), (Some(2), hi(l.max_classes)));
        assert_eq!(range(&spec["seed"]), (Some(0), Some(u64::MAX)));
        // Each bound of the document is accepted by the parser, and one step beyond refused.
        let at = |path: &[&str], v: Value| parse_spec(&with(path, v), &l);
        assert!(at(&["samples"], json!(l.max_samples)).is_ok());
        assert!(at(&["samples"], json!(l.max_samples + 1)).is_err());
        assert!(at(&["network", "head"], json!({"classes": 1})).is_err());
        assert!(at(&["epsilon"], json!(1e6)).is_ok());
        assert!(at(&["epsilon"], json!(1.000001e6)).is_err());
        assert!(at(&["delta"], json!(5e-324)).is_ok());
    }

    #[test]
    fn missing_seed_is_drawn_and_echoed() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("seed");
        let s = parse_spec(&v, &Limits::default()).unwrap();
        assert_eq!(s.to_json()["seed"], json!(s.seed));
        for _ in 0..1000 {
            assert!(draw_seed() < 1 << 53);
        }
        // A given seed may still be any u64.
        let s = parse_spec(&with(&["seed"], json!(u64::MAX)), &Limits::default()).unwrap();
        assert_eq!(s.seed, u64::MAX);
    }
}
