//! `hub report`: the assessment indicators of a running hub, as a table or CSV.

/// `hub report`: the indicators from a running hub, as CSV or a table.
pub async fn report_cli(
    api: &str,
    token: Option<&str>,
    query: &[(&str, Option<String>)],
    csv: bool,
) -> anyhow::Result<()> {
    let mut params: Vec<(&str, String)> = query
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect();
    params.push(("format", if csv { "csv" } else { "json" }.to_owned()));
    let mut req = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/reports/indicators",
            api.trim_end_matches('/')
        ))
        .query(&params);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the hub at {api}: {e}"))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        anyhow::bail!("the hub answered {status}: {body}");
    }
    if csv {
        print!("{body}");
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let pct = |x: &serde_json::Value| {
        x.as_f64()
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_else(|| "-".to_owned())
    };
    println!(
        "{:<28} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        v["by"].as_str().unwrap_or("group"),
        "cases",
        "立案率",
        "结案率",
        "按期",
        "返工率",
        "延期率",
        "响应率",
        "解决率",
        "满意率"
    );
    for g in v["groups"].as_array().into_iter().flatten() {
        println!(
            "{:<28} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            g["key"].as_str().unwrap_or("-"),
            g["received"],
            pct(&g["filing_rate"]),
            pct(&g["closing_rate"]),
            pct(&g["on_time_closing_rate"]),
            pct(&g["rework_rate"]),
            pct(&g["extension_rate"]),
            pct(&g["response_rate"]),
            pct(&g["resolution_rate"]),
            pct(&g["satisfaction_rate"]),
        );
    }
    Ok(())
}
