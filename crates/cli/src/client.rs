//! The REST client: one call, its problem document turned into a message and an exit code; the token file.

use reqwest::Method;
use serde_json::Value;

/// A failed command, with the exit code it maps to.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

pub fn failure(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: String, token: Option<String>) -> Self {
        Self { http: reqwest::Client::new(), base, token }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    /// A call with a body of the given media type (policy bundles may be YAML).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> Result<Value, Failure> {
        self.send(self.request(method, path).header("content-type", content_type).body(body)).await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}{}", self.base.trim_end_matches('/'), path))
            .header("x-polaris-channel", "cli");
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let resp = req.send().await.map_err(|e| failure(1, format!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(problem(status, &body))
    }
}

/// problem+json as a message: the stable code, the detail, and each violation on its own line. Exit 3 for a
/// policy violation, 4 for a conflict, 1 otherwise.
fn problem(status: reqwest::StatusCode, body: &Value) -> Failure {
    let code = body["code"].as_str().unwrap_or("ERROR");
    let mut message = format!("{code}: {}", body["detail"].as_str().unwrap_or(status.as_str()));
    if code == "UNAUTHENTICATED" {
        message.push_str(
            "\n  the token is missing, unknown or revoked: run `polaris login --token ...` or set POLARIS_TOKEN",
        );
    }
    for v in body["violations"].as_array().into_iter().flatten() {
        message.push_str(&format!(
            "\n  {} ({}, policy version {}): {}",
            v["field"].as_str().unwrap_or("?"),
            v["policy"].as_str().unwrap_or("?"),
            v["policy_version"],
            v["message"].as_str().unwrap_or("")
        ));
    }
    if let Some(op) = body["operation_id"].as_str() {
        message.push_str(&format!("\n  running operation: {op} (polaris operations watch {op})"));
    }
    let exit = match (status.as_u16(), code) {
        (_, "POLICY_VIOLATION") => 3,
        (409, _) => 4,
        _ => 1,
    };
    failure(exit, message)
}

/// Where `polaris login` keeps the token.
fn token_file() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config")))?;
    Some(dir.join("polaris").join("token"))
}

pub fn stored_token() -> Option<String> {
    token_file().and_then(|p| std::fs::read_to_string(p).ok()).map(|t| t.trim().to_owned())
}

pub fn save_token(token: &str) -> Result<std::path::PathBuf, Failure> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let path = token_file().ok_or_else(|| failure(1, "no config directory (set HOME or XDG_CONFIG_HOME)"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failure(1, format!("{}: {e}", dir.display())))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&path).map_err(|e| failure(1, format!("{}: {e}", path.display())))?;
    writeln!(f, "{token}").map_err(|e| failure(1, format!("{}: {e}", path.display())))?;
    Ok(path)
}
