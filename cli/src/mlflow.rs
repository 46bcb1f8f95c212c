//! A small client of MLflow's tracking REST API (2.0 paths), as much as `sync` needs.

use std::fmt::Write as _;
use std::time::Duration;

use crate::exit::Failure;

/// MLflow's limits per `log-batch` request.
pub const MAX_METRICS: usize = 1000;
pub const MAX_PARAMS: usize = 100;
pub const MAX_TAGS: usize = 100;
/// Longest parameter value MLflow stores; longer ones are cut (with a warning).
pub const MAX_PARAM_VALUE: usize = 6000;
/// Longest parameter or tag key.
pub const MAX_KEY: usize = 250;
/// Longest tag value.
pub const MAX_TAG_VALUE: usize = 8000;

/// One metric point as `log-batch` takes it.
pub struct Point<'a> {
    pub key: &'a str,
    pub value: f64,
    pub timestamp_ms: u64,
    pub step: u64,
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the tracking server at `url` (`http://` or `https://`).
    pub fn new(url: &str) -> Result<Client, Failure> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Failure::input(format!("--mlflow {url:?} is not an http:// or https:// URL")));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build();
        Ok(Client { base: url.trim_end_matches('/').to_string(), agent: config.into() })
    }

    fn failure(&self, what: &str, detail: &str) -> Failure {
        Failure::Remote(format!("the MLflow server at {} {what}: {detail}", self.base))
    }

    /// Sends a request and returns the JSON answer; a non-2xx answer is a failure naming the
    /// HTTP status and MLflow's error code and message.
    fn call(&self, endpoint: &str, body: Option<String>, query: &[(&str, &str)]) -> Result<serde_json::Value, Failure> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let response = match body {
            Some(body) => self.agent.post(&url).header("Content-Type", "application/json").send(body),
            None => {
                let mut request = self.agent.get(&url);
                for (key, value) in query {
                    request = request.query(*key, *value);
                }
                request.call()
            }
        };
        let mut response = response.map_err(|error| {
            self.failure("cannot be reached", &format!("{error}; check the URL and that the server runs"))
        })?;
        let status = response.status().as_u16();
        let text =
            response.body_mut().with_config().limit(256 << 20).read_to_string().map_err(|error| {
                self.failure(&format!("sent an unreadable answer to {endpoint}"), &error.to_string())
            })?;
        let json: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(&text).map_err(|_| {
                self.failure(&format!("answered {endpoint} with HTTP {status} and no JSON"), &cut(&text, 200))
            })?
        };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let code = json["error_code"].as_str().unwrap_or("");
        let message = json["message"].as_str().unwrap_or(&text);
        Err(self.failure(&format!("refused {endpoint}"), &format!("HTTP {status} {code}: {}", cut(message, 300))))
    }

    /// The id of experiment `name`, created if it does not exist.
    pub fn experiment(&self, name: &str) -> Result<String, Failure> {
        match self.call("experiments/get-by-name", None, &[("experiment_name", name)]) {
            Ok(json) => string(&json["experiment"]["experiment_id"], "experiment id"),
            Err(Failure::Remote(message)) if message.contains("RESOURCE_DOES_NOT_EXIST") => {
                let json = self.call("experiments/create", Some(serde_json::json!({"name": name}).to_string()), &[])?;
                string(&json["experiment_id"], "experiment id")
            }
            Err(other) => Err(other),
        }
    }

    /// Creates a run and returns its id.
    pub fn create_run(
        &self,
        experiment: &str,
        name: &str,
        start_ms: u64,
        tags: &[(String, String)],
    ) -> Result<String, Failure> {
        let tags: Vec<_> = tags.iter().map(|(key, value)| serde_json::json!({"key": key, "value": value})).collect();
        let body =
            serde_json::json!({"experiment_id": experiment, "run_name": name, "start_time": start_ms, "tags": tags});
        let json = self.call("runs/create", Some(body.to_string()), &[])?;
        string(&json["run"]["info"]["run_id"], "run id")
    }

    /// Logs metrics, params and tags in one request (the caller keeps within the limits).
    pub fn log_batch(
        &self,
        run: &str,
        metrics: &[Point<'_>],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<(), Failure> {
        // Built by hand: JSON has no NaN or infinity. MLflow parses requests with protobuf's JSON
        // mapping, which writes them as the strings "NaN", "Infinity" and "-Infinity" (a bare
        // NaN literal makes the server store a zeroed point instead, without an error).
        let mut body = String::with_capacity(64 + metrics.len() * 80);
        let _ = write!(body, "{{\"run_id\":{},\"metrics\":[", quote(run));
        for (index, point) in metrics.iter().enumerate() {
            let value = if point.value.is_nan() {
                "\"NaN\"".to_string()
            } else if point.value.is_infinite() {
                (if point.value > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" }).to_string()
            } else {
                format!("{:?}", point.value)
            };
            let _ = write!(
                body,
                "{}{{\"key\":{},\"value\":{value},\"timestamp\":{},\"step\":{}}}",
                if index == 0 { "" } else { "," },
                quote(point.key),
                point.timestamp_ms,
                point.step
            );
        }
        body.push_str("],\"params\":");
        body.push_str(&pairs(params).to_string());
        body.push_str(",\"tags\":");
        body.push_str(&pairs(tags).to_string());
        body.push('}');
        self.call("runs/log-batch", Some(body), &[]).map(drop)
    }

    /// Sets a run's status (`RUNNING`, `FINISHED`, `FAILED`, `KILLED`) and end time.
    pub fn update_run(&self, run: &str, status: &str, end_ms: Option<u64>) -> Result<(), Failure> {
        let mut body = serde_json::json!({"run_id": run, "status": status});
        if let Some(end) = end_ms {
            body["end_time"] = end.into();
        }
        self.call("runs/update", Some(body.to_string()), &[]).map(drop)
    }

    /// The steps at which metric `key` of run `run` has points, within `from..=to`.
    pub fn steps_logged(&self, run: &str, key: &str, from: u64, to: u64) -> Result<Vec<u64>, Failure> {
        let mut steps = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![("run_id", run), ("metric_key", key), ("max_results", "25000")];
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let json = self.call("metrics/get-history", None, &query)?;
            if let Some(points) = json["metrics"].as_array() {
                steps.extend(points.iter().filter_map(|p| p["step"].as_u64()).filter(|s| (from..=to).contains(s)));
            }
            match json["next_page_token"].as_str() {
                Some(next) if !next.is_empty() => token = next.to_string(),
                _ => return Ok(steps),
            }
        }
    }
}

fn pairs(pairs: &[(String, String)]) -> serde_json::Value {
    pairs.iter().map(|(key, value)| serde_json::json!({"key": key, "value": value})).collect()
}

fn quote(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn string(value: &serde_json::Value, what: &str) -> Result<String, Failure> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Failure::Remote(format!("the MLflow server's answer holds no {what}")))
}

/// `text` cut to `max` characters, with an ellipsis.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
