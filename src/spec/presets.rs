//! Named paper configurations: `POST /v1/jobs {"preset": NAME, ...overrides}`.

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;

use crate::spec::{JobSpecInput, NetworkInput, SpecError};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preset {
    #[schema(value_type = PresetName)]
    pub name: &'static str,
    /// The figure of Arpit & Bengio (arXiv 1901.03611, v1) it reproduces.
    #[schema(value_type = String)]
    pub figure: &'static str,
    #[schema(value_type = String)]
    pub description: &'static str,
    /// The job spec; any field can be overridden in the request.
    #[schema(value_type = JobSpecInput)]
    pub spec: Value,
}

/// The name of a preset: an OpenAPI string enum of the names [`presets`] defines.
pub struct PresetName;

impl utoipa::PartialSchema for PresetName {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = presets().iter().map(|p| p.name).collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .description(Some("A preset of GET /v1/presets."))
            .into()
    }
}

impl ToSchema for PresetName {}

/// The OpenAPI schema of `{"preset": NAME, ...overrides}` (what [`expand`] reads): `preset`
/// and the fields of a job spec as overrides, with the same ranges, none required.
pub struct PresetRequest;

impl utoipa::PartialSchema for PresetRequest {
    fn schema() -> RefOr<Schema> {
        // The fields of a spec, none required, plus `preset`: one definition of the fields.
        let mut schema = match <JobSpecInput as utoipa::PartialSchema>::schema() {
            RefOr::T(Schema::Object(object)) => object,
            _ => unreachable!("JobSpecInput derives an object schema"),
        };
        schema.required = vec!["preset".to_string()];
        schema
            .properties
            .insert("preset".to_string(), Ref::from_schema_name(PresetName::name()).into());
        schema.properties.insert(
            "network".to_string(),
            Ref::from_schema_name(NetworkOverrides::name()).into(),
        );
        schema.description = Some(
            "{\"preset\": NAME, ...overrides}: the preset's spec with any spec fields merged over it (objects key by \
             key, anything else replaced; giving network.init drops the preset's weight_norm and the other way round, \
             likewise widths against depth + width, and depth against depths_to_sweep). No override is required; \
             unknown fields are refused."
                .to_string(),
        );
        RefOr::T(Schema::Object(schema))
    }
}

impl ToSchema for PresetRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            PresetName::name().into(),
            <PresetName as utoipa::PartialSchema>::schema(),
        ));
        schemas.push((
            NetworkOverrides::name().into(),
            <NetworkOverrides as utoipa::PartialSchema>::schema(),
        ));
        JobSpecInput::schemas(schemas);
    }
}

/// The `network` of a preset request: the fields of a network, none required (the preset's
/// network gives the rest).
pub struct NetworkOverrides;

impl utoipa::PartialSchema for NetworkOverrides {
    fn schema() -> RefOr<Schema> {
        let mut schema = match <NetworkInput as utoipa::PartialSchema>::schema() {
            RefOr::T(Schema::Object(object)) => object,
            _ => unreachable!("NetworkInput derives an object schema"),
        };
        schema.required.clear();
        schema.description = Some(
            "Overrides of the preset's network: the fields of a network, none required, merged key by key.".into(),
        );
        RefOr::T(Schema::Object(schema))
    }
}

impl ToSchema for NetworkOverrides {}

fn paper_network(init: Value, width: usize) -> Value {
    json!({"input_dim": 500, "depth": 10, "width": width, "init": init, "head": {"classes": 20}})
}

fn base(network: Value) -> Value {
    json!({
        "kind": "norms",
        "network": network,
        "samples": 2000,
        "trials": 1,
        "input": {"distribution": "gaussian"},
        "epsilon": 0.15,
        "delta": 0.05,
        "seed": 2019,
        "precision": "f64",
    })
}

pub fn presets() -> Vec<Preset> {
    let he = json!({"scheme": "he", "fan": "out"});
    let mut wn_naive = paper_network(Value::Null, 2000);
    wn_naive["weight_norm"] = json!({"gain": "naive", "direction": "gaussian"});
    let mut wn_derived = paper_network(Value::Null, 2000);
    wn_derived["weight_norm"] = json!({"gain": "derived", "direction": "gaussian"});
    let mut sweep = base(json!({
        "input_dim": 500, "depth": 10, "init": he, "head": {"classes": 20},
        "widths_to_sweep": [500, 1000, 2000, 4000]
    }));
    sweep["kind"] = json!("width_sweep");
    let min_width = |samples: usize, epsilon: f64| {
        json!({
            "kind": "min_width",
            "network": {"input_dim": 500, "depth": 10, "init": he, "head": {"classes": 20}},
            "samples": samples,
            "input": {"distribution": "gaussian"},
            "epsilon": epsilon,
            "delta": 0.05,
            "claim": "both",
            "confidence": 0.95,
            "seed": 2019,
            "precision": "f64",
        })
    };
    // The sequel (Arpit, Campos & Bengio 2019): n0 = 500, 1000 inputs; fully connected
    // weight-normalized networks of depth 20 with widths drawn around m = 1000, and residual
    // networks of 40 blocks. The widths were drawn once, uniformly from 500..=1500 (Python's
    // random.Random(2019).randint), and are fixed here so that the preset is one network shape.
    let sequel_widths = json!([
        1352, 658, 1307, 748, 1461, 1009, 664, 751, 1164, 755, 1352, 1159, 824, 1454, 1271, 1312, 1484, 1491, 1152,
        1270
    ]);
    let sequel_fc = |gain: &str| {
        let mut spec = base(json!({
            "input_dim": 500, "widths": sequel_widths, "weight_norm": {"gain": gain, "direction": "gaussian"},
            "head": {"classes": 20}
        }));
        spec["samples"] = json!(1000);
        spec
    };
    let sequel_resnet = |gain: &str| {
        let mut spec = base(json!({
            "input_dim": 500, "architecture": "residual", "blocks": 40, "width": 500,
            "weight_norm": {"gain": gain, "direction": "gaussian"}, "head": {"classes": 20}
        }));
        spec["samples"] = json!(1000);
        spec
    };
    let mut blocks_sweep = base(json!({
        "input_dim": 100, "architecture": "residual", "widths_to_sweep": [100],
        "blocks_to_sweep": [1, 2, 5, 10, 20, 40, 80],
        "weight_norm": {"gain": "proposed", "direction": "gaussian"}, "head": {"classes": 20}
    }));
    blocks_sweep["kind"] = json!("width_sweep");
    blocks_sweep["samples"] = json!(1000);
    blocks_sweep["trials"] = json!(4);
    vec![
        Preset {
            name: "arpit2019-min-width-small",
            figure: "The question behind Figure 6: the minimal width itself (N = 100)",
            description: "The smallest width at which, with probability >= 0.95 over He (fan-out) networks of depth 10 \
                          with n0 = 500, every forward and gradient ratio of 100 Gaussian inputs stays within 1 +/- 0.5, \
                          searched with certified decisions (every decision right with probability >= 0.95), beside \
                          each bound's width and looseness. Minutes on a laptop.",
            spec: min_width(100, 0.5),
        },
        Preset {
            name: "arpit2019-min-width",
            figure: "The question behind Figure 6: the minimal width at the paper's N = 2000, epsilon = 0.15",
            description: "The same search at the paper's setting: N = 2000 inputs, depth 10, epsilon = 0.15, delta = 0.05. \
                          A large job (hours on two cores): every probe near the frontier draws thousands of networks \
                          of width in the tens of thousands with 2000 inputs; give it a max_work budget, or spread it \
                          over workers.",
            spec: min_width(2000, 0.15),
        },
        Preset {
            name: "arpit2019-fig1",
            figure: "Figure 1 (He initialization)",
            description: "One He (fan-out, N(0, 2/n_l)) network, n0 = 500, 10 layers of width 100, 2000 Gaussian inputs. \
                          Expect, in distribution (the exact law): forward ratio ||h^l||/||x|| with mean 0.994 at layer 1 \
                          falling to 0.939 at layer 10, spread over networks and inputs 0.11 to 0.34 but within one network \
                          only 0.11 to 0.24 (the rest is the network's own drift, of order sqrt(5/m) per layer); gradient \
                          ratio with mean 1.18 at layer 1 falling to 0.945 at layer 10 (above mean field's 1 below layer L: \
                          the s^2 term of the exact law), spread about 0.33 to 0.36. One network's layer means differ from \
                          these by its own noise.",
            spec: base(paper_network(he.clone(), 100)),
        },
        Preset {
            name: "arpit2019-fig1-glorot",
            figure: "Figure 1 (Glorot initialization, as in the paper's scripts)",
            description: "The same setting with W ~ N(0, 1/n_l): each layer halves the squared norm in expectation. Expect \
                          (exact law) a forward ratio with mean 0.703, 0.494, 0.347, 0.244, 0.171, 0.120, 0.085, 0.059, 0.042, \
                          0.029 at layers 1 to 10 (2^(-l/2) times the He law) and a gradient ratio near 0.06 to 0.04.",
            spec: base(paper_network(json!({"scheme": "glorot_paper"}), 100)),
        },
        Preset {
            name: "arpit2019-fig3-wn-naive",
            figure: "Figure 3 (weight normalization, naive gain g = 1)",
            description: "Weight-normalized network, n0 = 500, 10 layers of width 2000, g = 1, Gaussian directions. \
                          Expect (the exact second moment: each layer multiplies the squared norm by g^2 n_l / (2 n_(l-1))) \
                          a forward ratio of sqrt(2) = 1.414 at layer 1 and 2^(-1/2) less per layer after, 0.0625 at layer \
                          10; gradient ratios small and flat (mean field 0.088 for l >= 2, 0.044 at layer 1). At width 2000 \
                          the spread is a few percent.",
            spec: base(wn_naive),
        },
        Preset {
            name: "arpit2019-fig4-wn-derived",
            figure: "Figure 4 (weight normalization, the derived initialization)",
            description: "The same network with g^l = sqrt(2 n_(l-1) / n_l). Expect forward and gradient ratios whose \
                          second moment is exactly 1 at every layer (mean field for the gradient), with a spread of a few \
                          percent at width 2000.",
            spec: base(wn_derived),
        },
        Preset {
            name: "arpit2019-fig6",
            figure: "Figure 6 (the width bound)",
            description: "He (fan-out) networks of depth 10 at widths 500, 1000, 2000, 4000, one network of 2000 inputs per \
                          width, delta = 0.05. Expect the pooled forward deviation |1 - r| to fall like m^(-1/2): its mean \
                          over networks and inputs (exact law) is 0.090, 0.063, 0.045, 0.032 (gradient 0.121, 0.085, \
                          0.060, 0.042), one network sitting above or below by its own drift; beside it arpit2019's \
                          guaranteed epsilon 1.950933, 0.743145, 0.325388, 0.152397.",
            spec: sweep,
        },
        Preset {
            name: "acb2019-wn-fc-naive",
            figure: "Figure of the sequel's synthetic experiment (Arpit, Campos & Bengio 2019): fully connected, naive gain",
            description: "A weight-normalized fully connected network, n0 = 500, depth 20 with widths drawn around m = 1000 \
                          (uniformly from 500..1500, fixed in the preset), g = 1, Gaussian directions, 1000 Gaussian \
                          inputs. Each layer multiplies the squared norm by n_l / (2 n_(l-1)) in expectation, so the \
                          forward ratio's second moment at layer l is (n_l / n_0) 2^(-l) exactly: a root mean square of \
                          1.16 at layer 1 falling to 0.0016 at layer 20.",
            spec: sequel_fc("naive"),
        },
        Preset {
            name: "acb2019-wn-fc-proposed",
            figure: "Figure of the sequel's synthetic experiment (Arpit, Campos & Bengio 2019): fully connected, proposed gain",
            description: "The same network with the proposed gain g_l = sqrt(2 n_(l-1) / n_l) (\"derived\"): the forward \
                          ratio's second moment is exactly 1 at every layer, whatever the widths; the gradient ratio is \
                          near 1 in mean field (within the widths' ratios, since they differ).",
            spec: sequel_fc("derived"),
        },
        Preset {
            name: "acb2019-resnet-naive",
            figure: "Figure of the sequel's synthetic experiment (Arpit, Campos & Bengio 2019): residual, naive gains",
            description: "A residual network of 40 blocks h^b = h^(b-1) + g_2 V_2 ReLU(g_1 V_1 h^(b-1)) on a stream of width \
                          n0 = 500 with hidden width 500, weight norm with g_1 = g_2 = 1, 1000 inputs. Each block multiplies \
                          the squared norm by 1 + g_1^2 g_2^2 / 2 = 1.5, so the forward ratio's root mean square is \
                          1.5^(b/2): 1.22 at block 1, 7.59 at block 10, 57.7 at block 20, 3325 at block 40; the backward \
                          ratio ||dL/dh^(b-1)|| / ||dL/dh^B|| grows the same way from the output down (mean field).",
            spec: sequel_resnet("naive"),
        },
        Preset {
            name: "acb2019-resnet-proposed",
            figure: "Figure of the sequel's synthetic experiment (Arpit, Campos & Bengio 2019): residual, proposed gains",
            description: "The same residual network with the proposed gains g_1 = sqrt(2 n0 / m), g_2 = sqrt(m / (B n0)): \
                          each block multiplies the squared norm by 1 + 1/B exactly in expectation, so the forward ratio's \
                          root mean square is (1 + 1/40)^(b/2): 1.0124 at block 1, 1.1314 at block 10, 1.2801 at block 20, \
                          1.638616 at block 40 (below sqrt(e) for any B); the mean sits a few thousandths below (the \
                          Jensen gap, predicted beside it). The backward ratio's root mean square is (1 + 1/40)^((41 - b)/2) \
                          in mean field, 1.6386 at block 1.",
            spec: sequel_resnet("proposed"),
        },
        Preset {
            name: "acb2019-resnet-blocks",
            figure: "Figure of a sweep over the number of residual blocks (proposed gains): output ratio against B",
            description: "Residual networks with the proposed gains, n0 = 100, hidden width 100, B = 1, 2, 5, 10, 20, 40, 80 \
                          blocks, 4 networks of 1000 inputs each. The output's forward ratio ||h^B|| / ||x|| has root mean \
                          square (1 + 1/B)^(B/2): 1.4142, 1.5, 1.5774, 1.6105, 1.6289, 1.6386, 1.6436, rising towards \
                          sqrt(e) = 1.6487 but never past it; the backward ratio at the input the same in mean field.",
            spec: blocks_sweep,
        },
        Preset {
            name: "geometry-he-angles",
            figure: "Figure of angles and distances: cosine and distance ratio against layer per initial angle (the infinite-width view beside the papers)",
            description: "Pairs of inputs with equal norms at initial angles 10, 30, 60, 90 and 120 degrees, 32 pairs per \
                          angle through each of 16 He (fan-out) networks, n0 = 100, 10 layers of width 1000. Expect the \
                          mean cosine of h^l(x), h^l(y) to follow the ReLU arc-cosine map iterated l times within a few \
                          standard errors: at layer 10 about 0.989, 0.947, 0.898, 0.872, 0.860 (every angle closes \
                          towards 0), and the distance ratio ||h^l(x) - h^l(y)|| / ||x - y|| to shrink to about 0.84, \
                          0.63, 0.45, 0.36, 0.31 (sqrt((1 - c_l) / (1 - c_0))), with a spread of a few hundredths.",
            spec: json!({
                "kind": "geometry",
                "network": {"input_dim": 100, "depth": 10, "width": 1000, "init": {"scheme": "he", "fan": "out"}},
                "pairs": 32,
                "angles": [10.0, 30.0, 60.0, 90.0, 120.0],
                "trials": 16,
                "seed": 2019,
                "precision": "f64",
            }),
        },
        Preset {
            name: "worst-case-he",
            figure: "Figure of the infinite-sample claim: worst-case deviation over the unit sphere against sqrt(n0 / m), random inputs beside it",
            description: "He (fan-out) networks of depth 3 at input dimensions 4, 16, 64 and widths 64, 256, 4 networks per \
                          point, 500 random inputs, 8 random starts of 60 steps per layer and direction. Expect the \
                          worst case found over the sphere to deviate from 1 far more than any of the random inputs, \
                          growing with sqrt(n0 / m) and shrinking with width; the certified upper bound (the product of \
                          the layers' spectral norms, about (sqrt(2) (1 + sqrt(n0 / m)))^l) above every maximum found.",
            spec: json!({
                "kind": "worst_case",
                "network": {"input_dims_to_sweep": [4, 16, 64], "widths_to_sweep": [64, 256], "depth": 3,
                            "init": {"scheme": "he", "fan": "out"}},
                "samples": 500,
                "trials": 4,
                "restarts": 8,
                "steps": 60,
                "seed": 2019,
            }),
        },
    ]
}

/// Deep-merge `overrides` into `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, overrides: &Value) {
    match (base, overrides) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// If `body` names a preset, return the preset's spec with the rest of `body` merged over it
/// (and the preset's name); otherwise `body` unchanged.
pub fn expand(body: &Value) -> Result<(Value, Option<&'static str>), SpecError> {
    let Some(obj) = body.as_object() else {
        return Ok((body.clone(), None));
    };
    let Some(name) = obj.get("preset") else {
        return Ok((body.clone(), None));
    };
    let all = presets();
    let names: Vec<&str> = all.iter().map(|p| p.name).collect();
    let preset = name
        .as_str()
        .and_then(|n| all.iter().find(|p| p.name == n))
        .ok_or_else(|| {
            SpecError::new(
                "preset",
                format!("unknown preset {name}; allowed: {}", names.join(", ")),
            )
        })?;
    let overrides: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| *k != "preset")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut spec = preset.spec.clone();
    // Switching between init and weight norm replaces the other.
    // So do the two ways of giving the shape (depth + width, widths; depth, depths_to_sweep).
    if let (Some(net), Some(base)) = (
        overrides.get("network").and_then(Value::as_object),
        spec["network"].as_object_mut(),
    ) {
        let replaces: [(&str, &[&str]); 11] = [
            ("init", &["weight_norm"]),
            ("weight_norm", &["init"]),
            ("widths", &["depth", "width", "blocks"]),
            ("width", &["widths", "widths_to_sweep"]),
            ("widths_to_sweep", &["width"]),
            ("input_dim", &["input_dims_to_sweep"]),
            ("input_dims_to_sweep", &["input_dim"]),
            ("depth", &["widths", "depths_to_sweep"]),
            ("depths_to_sweep", &["depth"]),
            ("blocks", &["widths", "blocks_to_sweep"]),
            ("blocks_to_sweep", &["blocks"]),
        ];
        for (given, removed) in replaces {
            if net.contains_key(given) {
                for r in removed {
                    base.remove(*r);
                }
            }
        }
    }
    merge(&mut spec, &Value::Object(overrides));
    Ok((spec, Some(preset.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{parse_spec, Limits};

    #[test]
    fn every_preset_is_a_valid_spec() {
        for p in presets() {
            parse_spec(&p.spec, &Limits::default()).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
    }

    #[test]
    fn overrides_merge_deeply() {
        let (spec, name) =
            expand(&json!({"preset": "arpit2019-fig1", "samples": 10, "network": {"width": 50}})).unwrap();
        assert_eq!(name, Some("arpit2019-fig1"));
        assert_eq!(spec["samples"], 10);
        assert_eq!(spec["network"]["width"], 50);
        assert_eq!(spec["network"]["input_dim"], 500);
        let (spec, _) = expand(&json!({"preset": "arpit2019-fig1", "network": {"widths": [100, 200]}})).unwrap();
        assert_eq!(
            parse_spec(&spec, &Limits::default()).unwrap().network.widths,
            vec![100, 200]
        );
        let (spec, _) = expand(&json!({"preset": "arpit2019-fig6", "network": {"depths_to_sweep": [5, 10]}})).unwrap();
        assert_eq!(
            parse_spec(&spec, &Limits::default()).unwrap().sweep().unwrap().depths,
            vec![5, 10]
        );
        let wn_to_he =
            json!({"preset": "arpit2019-fig3-wn-naive", "network": {"init": {"scheme": "he", "fan": "out"}}});
        let (spec, _) = expand(&wn_to_he).unwrap();
        assert!(parse_spec(&spec, &Limits::default()).is_ok());
        let e = expand(&json!({"preset": "nope"})).unwrap_err();
        assert_eq!(e.field, "preset");
        assert!(e.message.contains("arpit2019-fig6"));
    }
}
