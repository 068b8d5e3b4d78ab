//! Kept per-sample ratios of a `keep_samples` job: `GET /v1/jobs/{id}/samples` (CSV or NDJSON,
//! one row per network, input and layer) and `GET /v1/jobs/{id}/histogram.svg` (one layer's
//! histogram beside the exact law's density).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::extract::{Params, Path};
use super::responses::{BadQuery, Busy, Internal, JobNotFound, Timeout};
use super::schema::ErrorBody;
use super::{ApiError, AppState};
use crate::analysis::samples::{exact_law, layer_values, Histogram, SampleRatio, MAX_BINS, MIN_BINS};
use crate::figures::{self, density_points, histogram_svg, HistogramOf};
use crate::jobs::stored_spec;
use crate::sim::Simulation;
use crate::spec::{Kind, Spec};
use crate::store::{JobRow, Status};
use crate::theory::density::{forward_ratio_density, zero_mass};

/// Reads of kept samples at once: each holds up to `max_kept_values` ratios (8 bytes each) while
/// it decodes, and a download holds the text it rendered (about 37 bytes a value) until the last
/// byte is sent, so a burst of requests, or of slow readers, queues instead of exhausting
/// memory (16 slow readers of 4e6 values each once took the server from 175 MB to 2.7 GB).
static SAMPLE_READS: Semaphore = Semaphore::const_new(2);
/// How long a request waits for a permit before a 503 `busy`.
const SAMPLE_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Bytes per chunk of a download.
const DOWNLOAD_CHUNK: usize = 1 << 16;

crate::spec::names::string_enum! {
    /// How `/samples` renders: CSV with a header row (the default) or one JSON object per line.
    pub enum SampleFormat {
        Csv = "csv",
        Ndjson = "ndjson",
    }
}

/// What a request for kept samples reads: the job, its spec, its kept ratios, and the ratio and
/// layer asked for. Holds one of the [`SAMPLE_READS`] permits while it lives.
struct Kept {
    job: JobRow,
    spec: Spec,
    sim: Simulation,
    ratio: SampleRatio,
    /// The layer asked for, checked against the job's depth.
    layer: Option<usize>,
    _permit: SemaphorePermit<'static>,
}

/// Parse `ratio` and `layer`, then read the kept ratios: 409 unless the job is a succeeded
/// `norms` job that kept them, 422 for a layer beyond its depth (checked before decoding).
async fn kept(state: &AppState, id: &str, params: &Params) -> Result<Kept, ApiError> {
    let ratio = params
        .parse_name::<SampleRatio>("ratio")?
        .unwrap_or(SampleRatio::Forward);
    let permit = tokio::time::timeout(SAMPLE_READ_WAIT, SAMPLE_READS.acquire())
        .await
        .map_err(|_| {
            ApiError::Busy(format!(
                "every permit for reading kept samples stayed held by downloads in progress for {} s",
                SAMPLE_READ_WAIT.as_secs()
            ))
        })?
        .map_err(|e| ApiError::Internal(format!("sample reads: {e}")))?;
    let job = state.jobs.job(id).await?;
    if job.kind != Kind::Norms {
        return Err(ApiError::wrong_kind(
            id,
            job.kind,
            Kind::Norms,
            "kept per-sample ratios",
        ));
    }
    let spec =
        stored_spec(&job).ok_or_else(|| ApiError::Internal(format!("the stored spec of job {id} does not parse")))?;
    if !spec.keep_samples {
        return Err(ApiError::Conflict {
            code: "samples_not_kept",
            message: format!(
                "job {id} did not keep its per-sample ratios; submit it again with \"keep_samples\": true"
            ),
        });
    }
    if job.status != Status::Succeeded {
        return Err(ApiError::Conflict {
            code: "not_ready",
            message: format!(
                "job {id} is {}; its samples are served once it has succeeded",
                job.status
            ),
        });
    }
    let layer = layer_param(params, spec.network.depth())?;
    let sim = state.jobs.kept_samples(&job).await?;
    Ok(Kept {
        job,
        spec,
        sim,
        ratio,
        layer,
        _permit: permit,
    })
}

/// `layer` in [1, depth], or `None` when absent.
fn layer_param(params: &Params, depth: usize) -> Result<Option<usize>, ApiError> {
    let allowed = format!("an integer in [1, {depth}] (the job's depth)");
    match params.parse::<usize>("layer", &allowed)? {
        Some(l) if !(1..=depth).contains(&l) => Err(ApiError::invalid(
            "layer",
            format!("{l} is out of range; allowed: {allowed}"),
        )),
        other => Ok(other),
    }
}

/// One number as text: the shortest form that reads back to the same f64; empty when not
/// finite (`null` in NDJSON).
fn write_value(out: &mut String, v: f64, ndjson: bool) {
    if v.is_finite() {
        let _ = write!(out, "{v:?}");
    } else if ndjson {
        out.push_str("null");
    }
}

/// The rows of the layers asked for, network by network and input by input.
fn render(
    sim: &Simulation,
    layers: std::ops::RangeInclusive<usize>,
    ratio: SampleRatio,
    format: SampleFormat,
) -> String {
    let name = ratio.as_str();
    let rows = sim.trials.len() * sim.samples * layers.clone().count();
    let mut out = String::with_capacity(rows * 32 + 64);
    if format == SampleFormat::Csv {
        let _ = writeln!(out, "trial,sample,layer,{name}");
    }
    for layer in layers {
        for t in 0..sim.trials.len() {
            let values = match ratio {
                SampleRatio::Forward => sim.forward(t, layer),
                SampleRatio::Gradient => sim.gradient(t, layer),
            };
            for (s, &v) in values.iter().enumerate() {
                match format {
                    SampleFormat::Csv => {
                        let _ = write!(out, "{t},{s},{layer},");
                        write_value(&mut out, v, false);
                    }
                    SampleFormat::Ndjson => {
                        let _ = write!(out, "{{\"trial\":{t},\"sample\":{s},\"layer\":{layer},\"{name}\":");
                        write_value(&mut out, v, true);
                        out.push('}');
                    }
                }
                out.push('\n');
            }
        }
    }
    out
}

/// The per-sample ratios a `keep_samples` job kept: one row per (layer, network, input).
#[utoipa::path(get, path = "/v1/jobs/{id}/samples", tag = "results",
    params(("id" = String, Path, description = "the job's id"),
        ("layer" = Option<u32>, Query, minimum = 1, description = "one layer, 1 to the job's depth (default: every layer)"),
        ("ratio" = inline(Option<SampleRatio>), Query, description = "forward (default): ||h^l|| / ||x||; gradient: \
            ||delta^l|| ||h^{l-1}|| / (||x|| ||delta^L||)"),
        ("format" = inline(Option<SampleFormat>), Query, description = "csv (default) or ndjson")),
    responses(
        (status = 200, description = "csv: a header row `trial,sample,layer,<ratio>` then one row per layer, network \
            (0-based, in the job's order) and input (0-based); an undefined ratio is an empty cell. ndjson: one object \
            per line with the same fields, null for an undefined ratio. Numbers read back to the stored f64 exactly.",
            content(
                (String = "text/csv"),
                (String = "application/x-ndjson"),
            )),
        BadQuery, JobNotFound, Timeout,
        (status = 409, body = ErrorBody, description = "wrong_kind: not a norms job; samples_not_kept: the job was \
            submitted without keep_samples: true; not_ready: the job has not succeeded"),
        (status = 422, body = ErrorBody, description = "invalid_spec: a layer out of range, an unknown ratio or format \
            (`field` names the parameter)"),
        Busy, Internal))]
pub async fn samples(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.only(&["layer", "ratio", "format"])?;
    let format = params
        .parse_name::<SampleFormat>("format")?
        .unwrap_or(SampleFormat::Csv);
    let Kept {
        sim,
        ratio,
        layer,
        _permit,
        ..
    } = kept(&state, &id, &params).await?;
    let layers = match layer {
        Some(l) => l..=l,
        None => 1..=sim.depth,
    };
    let body = tokio::task::spawn_blocking(move || render(&sim, layers, ratio, format))
        .await
        .map_err(|e| ApiError::Internal(format!("rendering samples: {e}")))?;
    let (content_type, extension) = match format {
        SampleFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        SampleFormat::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let which = layer.map_or_else(|| "all-layers".to_string(), |l| format!("layer{l}"));
    let disposition = format!(
        "inline; filename=\"widthlab-{id}-{}-{which}.{extension}\"",
        ratio.as_str()
    );
    // The permit goes with the body: released when the last chunk is sent (or the client goes).
    let bytes = axum::body::Bytes::from(body);
    let chunks = futures_util::stream::unfold((bytes, _permit), |(rest, permit)| async move {
        if rest.is_empty() {
            return None;
        }
        let mut rest = rest;
        let chunk = rest.split_to(DOWNLOAD_CHUNK.min(rest.len()));
        Some((Ok::<_, std::convert::Infallible>(chunk), (rest, permit)))
    });
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}

/// One layer's kept ratios as a histogram (bars scaled as a density) beside the exact law's
/// density where one exists.
#[utoipa::path(get, path = "/v1/jobs/{id}/histogram.svg", tag = "results",
    params(("id" = String, Path, description = "the job's id"),
        ("layer" = Option<u32>, Query, minimum = 1, description = "1 to the job's depth (default: the last layer)"),
        ("ratio" = inline(Option<SampleRatio>), Query, description = "forward (default) or gradient"),
        ("bins" = Option<u32>, Query, minimum = 5, maximum = 400, description = "bars (default: the square root of \
            the number of ratios, within 5 to 100)")),
    responses(
        (status = 200, description = "An SVG document. The exact density is drawn for the forward ratio of plain \
            Gaussian weights (R^2 is a product of independent sigma_k^2 chi^2_K, K ~ Binomial(n_k, 1/2)); otherwise the \
            legend says why there is none.", content_type = "image/svg+xml", body = String),
        BadQuery, JobNotFound, Timeout,
        (status = 409, body = ErrorBody, description = "wrong_kind, samples_not_kept or not_ready, as for /samples"),
        (status = 422, body = ErrorBody, description = "invalid_spec: a layer or bins out of range, an unknown ratio \
            (`field` names the parameter)"),
        Busy, Internal))]
pub async fn histogram(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.only(&["layer", "ratio", "bins"])?;
    let bins_allowed = format!("an integer in [{MIN_BINS}, {MAX_BINS}]");
    let bins = match params.parse::<usize>("bins", &bins_allowed)? {
        Some(b) if !(MIN_BINS..=MAX_BINS).contains(&b) => {
            return Err(ApiError::invalid(
                "bins",
                format!("{b} is out of range; allowed: {bins_allowed}"),
            ))
        }
        other => other,
    };
    let Kept {
        job,
        spec,
        sim,
        ratio,
        layer,
        _permit,
    } = kept(&state, &id, &params).await?;
    let layer = layer.unwrap_or(sim.depth);
    let title = figures::figure_title(&job.id, job.preset.as_deref(), Some(&spec));
    let svg = tokio::task::spawn_blocking(move || {
        let count = sim.trials.len() * sim.samples;
        let h = Histogram::of(
            layer_values(&sim, layer, ratio),
            bins.unwrap_or_else(|| Histogram::default_bins(count)),
        );
        let exact = match exact_law(&spec, layer, ratio) {
            Ok(law) => match forward_ratio_density(&law, &density_points(&h)) {
                Some(ys) => Ok((ys, zero_mass(&law))),
                None => Err("the exact density is too costly to evaluate at this depth and width"),
            },
            Err(why) => Err(why),
        };
        histogram_svg(
            &title,
            &h,
            &HistogramOf {
                layer,
                residual: spec.network.is_residual(),
                ratio,
                networks: sim.trials.len(),
                inputs: sim.samples,
                exact,
            },
        )
    })
    .await
    .map_err(|e| ApiError::Internal(format!("drawing the histogram: {e}")))?
    .map_err(ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
