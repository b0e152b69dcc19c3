//! Security: the basic credentials or SigV4 signature a request must carry, who the caller is (a `Principal` of
//! Elasticsearch's or OpenSearch's security) and what it may do, and the security APIs' answers.

use std::sync::Mutex;

use bytes::Bytes;
use hyper::Response;
use serde_json::{Map, Value, json};

use super::{EsDouble, State, error_body, json_response};
use crate::server::{self, Body};

/// Credentials the double accepts, and for which service and region, when it requires SigV4.
#[derive(Debug, Clone)]
pub struct SigV4Check {
    pub region: String,
    pub service: String,
    /// (access key, secret key, session token)
    pub credentials: Vec<(String, String, Option<String>)>,
}

/// Whose security the double speaks: Elasticsearch's (`_security/_authenticate`, `_has_privileges`) or OpenSearch's
/// security plugin (`_plugins/_security/authinfo`, role mappings), each refusing as it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Elasticsearch,
    OpenSearch,
}

/// Who the double's security says every caller is, and what that principal may do (`set_principal`).
#[derive(Debug, Clone)]
pub struct Principal {
    pub flavour: Flavour,
    pub username: String,
    pub roles: Vec<String>,
    /// Its index privileges on every index, by Elasticsearch's names (`create_doc`, `auto_configure`, `write`…);
    /// OpenSearch's permissions are read through them (`crud` as `write`, `create_index` as itself).
    pub privileges: Vec<String>,
    /// What `GET _plugins/_security/api/rolesmapping` answers; `None`: 403, as to a principal without security API
    /// access.
    pub role_mappings: Option<Value>,
}

/// The index privileges Elasticsearch knows (an unknown name in `_has_privileges` is refused).
const INDEX_PRIVILEGES: [&str; 18] = [
    "all",
    "auto_configure",
    "create",
    "create_doc",
    "create_index",
    "cross_cluster_replication",
    "delete",
    "delete_index",
    "index",
    "maintenance",
    "manage",
    "manage_data_stream_lifecycle",
    "manage_follow_index",
    "manage_ilm",
    "manage_leader_index",
    "monitor",
    "read",
    "write",
];

impl Principal {
    /// A principal of `flavour` allowed what the indexer does, as each flavour's documentation grants it
    /// (Elasticsearch: `create_doc` and `auto_configure`; OpenSearch: `crud`, as `write`, and `create_index`), its
    /// role mappings unreadable.
    pub fn allowed(flavour: Flavour) -> Principal {
        let privileges = match flavour {
            Flavour::Elasticsearch => ["create_doc", "auto_configure"],
            Flavour::OpenSearch => ["write", "create_index"],
        };
        Principal {
            flavour,
            username: "kinesis-es-indexer".to_owned(),
            roles: vec!["logs_writer".to_owned()],
            privileges: privileges.iter().map(|p| (*p).to_owned()).collect(),
            role_mappings: None,
        }
    }

    /// Whether its privileges grant `privilege`, by Elasticsearch's implications (`write` grants `index`, which
    /// grants `create`, which grants `create_doc`; `manage` grants `create_index` and `auto_configure`).
    pub fn grants(&self, privilege: &str) -> bool {
        let implied_by: &[&str] = match privilege {
            "create_doc" => &["create", "index", "write"],
            "create" => &["index", "write"],
            "index" => &["write"],
            "create_index" | "auto_configure" => &["manage"],
            _ => &[],
        };
        self.privileges.iter().any(|held| held == privilege || held == "all" || implied_by.contains(&held.as_str()))
    }

    /// Writing documents (`create_doc`; OpenSearch's `indices:data/write/index`).
    pub(super) fn may_write(&self) -> bool {
        self.grants("create_doc")
    }

    /// Creating an index (`create_index`, or `auto_configure` for the creation a write asks;
    /// OpenSearch's `indices:admin/create`).
    pub(super) fn may_create_index(&self, explicitly: bool) -> bool {
        self.grants("create_index") || (!explicitly && self.grants("auto_configure"))
    }

    /// The 403 of an action this principal may not run, worded as its flavour's security words it.
    pub(super) fn refusal(&self, action: &str, index: &str, granted_by: &str) -> String {
        match self.flavour {
            Flavour::Elasticsearch => format!(
                "action [{action}] is unauthorized for user [{}] with effective roles [{}] on indices [{index}], this action is granted by the index privileges [{granted_by}]",
                self.username,
                self.roles.join(",")
            ),
            Flavour::OpenSearch => format!(
                "no permissions for [{action}] and User [name={}, backend_roles=[], requestedTenant=null]",
                self.username
            ),
        }
    }
}

impl EsDouble {
    /// Turns security on with `principal` as every caller (after basic or SigV4 authentication, when required), or
    /// off with `None`.
    pub fn set_principal(&self, principal: Option<Principal>) {
        self.state().principal = principal;
    }

    /// With `true`, every `GET` besides `/` is refused as an Amazon domain's access policy refuses a role granted
    /// only `es:ESHttpPost` and `es:ESHttpPut`: 403 with IAM's `Message`.
    pub fn set_iam_refuses_gets(&self, refuses: bool) {
        self.state().iam_refuses_gets = refuses;
    }

    /// With `true`, every `PUT` the doctor sends is refused as by an access policy granting no `es:ESHttpPut`.
    pub fn set_iam_refuses_puts(&self, refuses: bool) {
        self.state().iam_refuses_puts = refuses;
    }

    /// While set, the security plugin's APIs answer 503 as OpenSearch's does before its index is initialised.
    pub fn set_security_unavailable(&self, unavailable: bool) {
        self.state().security_unavailable = unavailable;
    }

    /// From now on, a bulk request must carry a valid SigV4 signature by one of these credentials, recomputed by
    /// botocore (`verify_sigv4.py`, independent of the indexer's signer); otherwise it is answered 403, as AWS does.
    pub fn require_sigv4(&self, check: SigV4Check) {
        self.state().sigv4 = Some(check);
    }

    /// From now on, a bulk request must carry these basic credentials; otherwise it is answered 401
    /// `security_exception`, as Elasticsearch does (`None` lifts the requirement).
    pub fn require_basic_auth(&self, credentials: Option<(&str, &str)>) {
        use base64::Engine;
        self.state().basic_auth = credentials.map(|(user, password)| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        });
    }
}

/// `GET _security/_authenticate`: Elasticsearch's principal, as its native realm describes it.
pub(super) fn authenticated_user(principal: Option<Principal>) -> Response<Body> {
    let principal = principal.expect("an Elasticsearch principal");
    json_response(
        200,
        &json!({
            "username": principal.username, "roles": principal.roles, "full_name": null, "email": null,
            "metadata": {}, "enabled": true,
            "authentication_realm": {"name": "default_native", "type": "native"},
            "lookup_realm": {"name": "default_native", "type": "native"},
            "authentication_type": "realm"
        }),
    )
}

/// `_security/user/_has_privileges`: each index privilege asked, granted or not (an unknown one refused).
pub(super) fn has_privileges(principal: Option<Principal>, body: &Bytes) -> Response<Body> {
    let principal = principal.expect("an Elasticsearch principal");
    let Ok(question) = serde_json::from_slice::<Value>(body) else {
        return json_response(400, &error_body(400, "parse_exception", "request body is required"));
    };
    let mut all = true;
    let mut index = Map::new();
    for entry in question["index"].as_array().into_iter().flatten() {
        for name in entry["names"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let mut granted = Map::new();
            for privilege in entry["privileges"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !INDEX_PRIVILEGES.contains(&privilege) {
                    let reason = format!(
                        "unknown index privilege [{privilege}]. a privilege must be either one of the predefined fixed indices privileges [{}] or a pattern over one of the available index actions",
                        INDEX_PRIVILEGES.join(",")
                    );
                    return json_response(400, &error_body(400, "illegal_argument_exception", &reason));
                }
                let has = principal.grants(privilege);
                all &= has;
                granted.insert(privilege.to_owned(), Value::Bool(has));
            }
            index.insert(name.to_owned(), Value::Object(granted));
        }
    }
    json_response(
        200,
        &json!({
            "username": principal.username, "has_all_requested": all, "cluster": {}, "index": index, "application": {}
        }),
    )
}

/// `GET _plugins/_security/authinfo`: OpenSearch's principal, as its security plugin describes it.
pub(super) fn authinfo(principal: Option<Principal>) -> Response<Body> {
    let principal = principal.expect("an OpenSearch principal");
    json_response(
        200,
        &json!({
            "user": format!("User [name={}, backend_roles=[], requestedTenant=null]", principal.username),
            "user_name": principal.username, "user_requested_tenant": null, "remote_address": "127.0.0.1:0",
            "backend_roles": [], "custom_attribute_names": [], "roles": principal.roles, "tenants": {},
            "principal": null, "peer_certificates": "0", "sso_logout_url": null
        }),
    )
}

/// `GET _plugins/_security/api/rolesmapping`: the principal's role mappings, or 403 without security API access.
pub(super) fn role_mappings(principal: Option<Principal>) -> Response<Body> {
    let principal = principal.expect("an OpenSearch principal");
    match principal.role_mappings {
        Some(mappings) => json_response(200, &mappings),
        None => json_response(
            403,
            &json!({
                "status": "FORBIDDEN",
                "message": format!("No permission to access REST API: User {} with Security roles [{}] does not have any role privileged for admin access", principal.username, principal.roles.join(", "))
            }),
        ),
    }
}

/// Asks botocore whether the request is signed by one of the accepted credentials over exactly these bytes.
async fn verify_sigv4(check: &SigV4Check, parts: &hyper::http::request::Parts, wire: &Bytes) -> Result<(), String> {
    use base64::Engine;
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let headers: Map<String, Value> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), Value::String(value.to_str().unwrap_or_default().to_owned())))
        .collect();
    let input = json!({
        "method": parts.method.as_str(),
        "url": format!("http://{host}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")),
        "headers": headers,
        "body_base64": base64::engine::general_purpose::STANDARD.encode(wire),
        "region": check.region,
        "service": check.service,
        "credentials": check.credentials.iter().map(|(a, s, t)| json!({"access_key": a, "secret_key": s, "session_token": t})).collect::<Vec<_>>(),
    });
    let verdict = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/verify_sigv4.py"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), input.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        serde_json::from_slice::<Value>(&output.stdout).map_err(|e| format!("verify_sigv4.py: {e}"))
    })
    .await
    .map_err(|e| e.to_string())??;
    match verdict["ok"].as_bool() {
        Some(true) => Ok(()),
        _ => Err(verdict["why"].as_str().unwrap_or("signature check failed").to_owned()),
    }
}

/// The basic credentials or the SigV4 signature the double requires, checked on every request as a secured
/// cluster does: 401 `security_exception`, or 403 with the reason (as Amazon OpenSearch Service answers).
pub(super) async fn authenticate(
    state: &Mutex<State>,
    parts: &hyper::http::request::Parts,
    wire: &Bytes,
) -> Result<(), Response<Body>> {
    let (required, flavour) = {
        let state = state.lock().expect("state");
        (state.basic_auth.clone(), state.principal.as_ref().map(|principal| principal.flavour))
    };
    let given = parts.headers.get("authorization").and_then(|v| v.to_str().ok());
    if let Some(required) = required
        && given != Some(required.as_str())
    {
        // OpenSearch's security plugin answers in plain text; Elasticsearch names the user it could not authenticate.
        if flavour == Some(Flavour::OpenSearch) {
            let refused = Response::builder()
                .status(401)
                .header("www-authenticate", "Basic realm=\"OpenSearch Security\"")
                .body(server::full("Unauthorized"))
                .expect("response");
            return Err(refused);
        }
        let user = given
            .and_then(|header| header.strip_prefix("Basic "))
            .and_then(|encoded| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|pair| pair.split_once(':').map(|(user, _)| user.to_owned()));
        let uri = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
        let reason = match user {
            Some(user) => format!("unable to authenticate user [{user}] for REST request [{uri}]"),
            None => format!("missing authentication credentials for REST request [{uri}]"),
        };
        let mut refused = json_response(401, &error_body(401, "security_exception", &reason));
        let challenge = hyper::header::HeaderValue::from_static("Basic realm=\"security\", charset=\"UTF-8\"");
        refused.headers_mut().insert("www-authenticate", challenge);
        return Err(refused);
    }
    let check = state.lock().expect("state").sigv4.clone();
    if let Some(check) = check
        && let Err(why) = verify_sigv4(&check, parts, wire).await
    {
        // Amazon's own refusal, before the cluster sees the request.
        return Err(json_response(403, &json!({ "Message": why })));
    }
    Ok(())
}
