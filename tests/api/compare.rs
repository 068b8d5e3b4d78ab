//! `/compare` and `/v1/compare/plot.svg`: several norms jobs overlaid in one figure.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error_of, small_spec, spawn_app};

#[tokio::test]
async fn two_jobs_are_overlaid_in_one_figure() {
    let app = spawn_app().await;
    let mut he = small_spec(61);
    he["name"] = json!("He <fan-out>");
    let mut glorot = small_spec(62);
    glorot["network"]["init"] = json!({"scheme": "glorot"});
    glorot["name"] = json!("Glorot");
    let he = app.submit(&he).await["id"].as_str().unwrap().to_string();
    let glorot = app.submit(&glorot).await["id"].as_str().unwrap().to_string();
    for id in [&he, &glorot] {
        app.wait_for_status(id, "succeeded", Duration::from_secs(30)).await;
    }

    let r = app.get(&format!("/v1/compare/plot.svg?ids={he},{glorot},{he}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let svg = r.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the figure is XML");
    let plot_areas = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("plot-area"))
        .count();
    assert_eq!(plot_areas, 2, "one panel per ratio");
    let text: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains(&format!("He <fan-out> ({})", &he[..8])), "{text}");
    assert!(text.contains(&format!("Glorot ({})", &glorot[..8])), "{text}");
    assert!(
        text.contains("2 norms jobs compared"),
        "a repeated id counts once: {text}"
    );
    // Each job's mean line in its colour (the first two of the palette), in both panels; no third.
    let lines = |colour: &str| {
        doc.descendants()
            .filter(|n| {
                n.has_tag_name("polyline") && n.attribute("stroke").is_some_and(|s| s.eq_ignore_ascii_case(colour))
            })
            .count()
    };
    assert_eq!(lines("#1F77B4"), 2, "{svg}");
    assert_eq!(lines("#D95F02"), 2);
    assert_eq!(lines("#2CA02C"), 0);

    // The page: both jobs, names escaped, the figure linked relatively.
    let html = app
        .get(&format!("/compare?ids={he},{glorot}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("src=\"v1/compare/plot.svg?ids={he},{glorot}\"")),
        "{html}"
    );
    assert!(html.contains("He &lt;fan-out&gt;"), "{html}");
    assert!(html.contains(&format!("href=\"jobs/{glorot}\"")));
    let empty = app.get("/compare?ids=").await;
    assert_eq!(empty.status(), StatusCode::OK, "no ids: the form");

    // Refusals name what is wrong.
    let e = error_of(
        app.get(&format!("/v1/compare/plot.svg?ids={he},,{glorot}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(e["field"], "ids");
    let nine: Vec<String> = (0..9).map(|i| format!("job-{i}")).collect();
    let e = error_of(
        app.get(&format!("/v1/compare/plot.svg?ids={}", nine.join(","))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains('8'), "{e}");
    error_of(
        app.get(&format!("/v1/compare/plot.svg?ids={he},nope")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    error_of(app.get("/v1/compare/plot.svg").await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let queued = app.submit(&crate::helpers::long_spec(63)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = error_of(
        app.get(&format!("/v1/compare/plot.svg?ids={he},{queued}")).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(e["code"], "not_ready");
    app.cancel(&queued).await;
    app.shutdown().await;
}
