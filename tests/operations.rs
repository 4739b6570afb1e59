//! The operations the crate promises, read from the OpenAPI documents themselves, so that
//! coverage cannot silently shrink: removing or renaming an endpoint in `openapi/` fails here.

use std::collections::BTreeSet;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every documented operation: (document, method, path).
const EXPECTED: [(&str, &str, &str); 23] = [
    ("s7risk", "POST", "/user/token"),
    ("s7risk", "POST", "/application/token"),
    ("weavr", "POST", "/login_with_password"),
    ("weavr", "GET", "/identities"),
    ("weavr", "POST", "/access_token"),
    ("weavr", "POST", "/stepup/challenges/otp/{channel}"),
    ("weavr", "POST", "/stepup/challenges/otp/{channel}/verify"),
    ("weavr", "POST", "/stepup/challenges/push/{channel}"),
    ("weavr", "POST", "/logout"),
    ("weavr", "POST", "/passwords/update"),
    ("accounts", "POST", "/v1/login"),
    ("accounts", "POST", "/v1/token-refresh"),
    ("accounts", "POST", "/v1/token-revoke"),
    ("accounts", "POST", "/v1/new-password-required"),
    ("accounts", "POST", "/v1/change-password"),
    ("accounts", "POST", "/v1/forgot-password"),
    ("accounts", "POST", "/v1/forgot-password-confirm"),
    ("passwordsafe", "POST", "/Auth/connect/token"),
    ("passwordsafe", "POST", "/Auth/SignAppin"),
    ("passwordsafe", "POST", "/Auth/Signout"),
    (
        "fib",
        "POST",
        "/auth/api/v1/authentication-management/session",
    ),
    (
        "fib",
        "PATCH",
        "/auth/api/v1/authentication-management/session",
    ),
    (
        "fib",
        "POST",
        "/auth/api/v1/authentication-management/logout",
    ),
];

struct Operation {
    api: String,
    method: String,
    path: String,
    id: String,
    statuses: Vec<String>,
}

fn operations() -> Vec<Operation> {
    let mut found = Vec::new();
    for api in ["s7risk", "weavr", "accounts", "passwordsafe", "fib"] {
        let file = format!("{}/openapi/{api}.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(doc["openapi"].as_str(), Some("3.0.3"), "{file}: version");
        let paths = doc["paths"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{file}: no paths"));
        for (path, item) in paths {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let statuses = op["responses"]
                    .as_mapping()
                    .map(|r| {
                        r.keys()
                            .map(|k| match k {
                                serde_yaml::Value::String(s) => s.clone(),
                                serde_yaml::Value::Number(n) => n.to_string(),
                                other => panic!("{file}: odd status key {other:?}"),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                found.push(Operation {
                    api: api.to_owned(),
                    method: method.to_uppercase(),
                    path: path.as_str().expect("paths are strings").to_owned(),
                    id: op["operationId"].as_str().unwrap_or_default().to_owned(),
                    statuses,
                });
            }
        }
    }
    found
}

#[test]
fn the_documents_describe_exactly_the_23_operations() {
    let found: BTreeSet<(String, String, String)> = operations()
        .into_iter()
        .map(|o| (o.api, o.method, o.path))
        .collect();
    let expected: BTreeSet<(String, String, String)> = EXPECTED
        .iter()
        .map(|(a, m, p)| ((*a).to_owned(), (*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, undeclared {extra:?}"
    );
    assert_eq!(found.len(), 23);
}

#[test]
fn every_operation_has_a_unique_snake_case_id_and_documents_its_errors() {
    let ops = operations();
    let mut ids = BTreeSet::new();
    for op in &ops {
        let name = format!("{} {} {}", op.api, op.method, op.path);
        assert!(
            !op.id.is_empty()
                && op
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}: operationId {:?} is not snake_case",
            op.id
        );
        assert!(
            ids.insert((op.api.clone(), op.id.clone())),
            "{name}: duplicate id"
        );
        assert!(
            op.statuses.iter().any(|s| s.starts_with('2')),
            "{name}: no success response"
        );
        assert!(
            op.statuses.iter().any(|s| s.starts_with('4')),
            "{name}: no documented client error"
        );
    }
}

fn document(api: &str) -> serde_yaml::Value {
    let file = format!("{}/openapi/{api}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn every_document_ends_its_description_with_its_sources_then_its_assumptions() {
    for api in ["s7risk", "weavr", "accounts", "passwordsafe", "fib"] {
        let doc = document(api);
        let description = doc["info"]["description"].as_str().unwrap_or_default();
        let sources = description
            .find("**Sources.**")
            .unwrap_or_else(|| panic!("{api}: no Sources list"));
        let assumptions = description
            .find("**Assumptions**")
            .unwrap_or_else(|| panic!("{api}: no Assumptions list"));
        assert!(sources < assumptions, "{api}: sources come first");
        let last = &description[assumptions..];
        assert!(
            !last.contains("\n\n"),
            "{api}: the assumptions are the description's last paragraph"
        );
        assert!(
            last.contains("(a)"),
            "{api}: the assumptions are listed, not summarised"
        );
    }
}

#[test]
fn weavr_names_only_its_sandbox_and_logout_succeeds_with_200_or_204() {
    let doc = document("weavr");
    let servers = doc["servers"].as_sequence().expect("servers");
    let urls: Vec<_> = servers.iter().map(|s| s["url"].as_str().unwrap()).collect();
    assert_eq!(urls, ["https://sandbox.weavr.io/multi"]);
    let text = serde_yaml::to_string(&doc).unwrap();
    assert!(!text.contains("api.weavr.io/multi"), "no invented Live URL");
    let logout = &doc["paths"]["/logout"]["post"];
    assert_eq!(logout["deprecated"].as_bool(), Some(true));
    let responses = logout["responses"].as_mapping().unwrap();
    for status in ["200", "204"] {
        assert!(
            responses.contains_key(serde_yaml::Value::String(status.into())),
            "/logout {status}"
        );
    }
    for path in ["/identities", "/access_token"] {
        let op = doc["paths"][path]
            .as_mapping()
            .unwrap()
            .values()
            .next()
            .unwrap();
        let alternatives: Vec<Vec<&str>> = op["security"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|alt| {
                alt.as_mapping()
                    .unwrap()
                    .keys()
                    .map(|k| k.as_str().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(
            alternatives,
            [vec!["auth_token", "api_key"], vec!["api_key"]],
            "{path}: the api-key alone is enough for a delegated API client"
        );
    }
}

/// Weavr gives each customer its Live URL on request (docs.weavr.io, API overview; the
/// project's API notes): no example may name a Weavr host that no customer is given, or
/// readers copy it. The ones here use a host of the reserved `.example` domain (RFC 2606).
#[test]
fn no_example_names_an_invented_weavr_host() {
    fn files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "md") {
                found.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = vec![root.join("README.md")];
    for dir in ["src", "examples", "tests"] {
        files(&root.join(dir), &mut found);
    }
    // This file names the invented URL to look for it.
    let this = root.join(file!());
    for path in found.into_iter().filter(|path| *path != this) {
        let text = std::fs::read_to_string(&path).expect("readable");
        for invented in ["api.weavr.io/multi", "\"api.weavr.io\""] {
            assert!(
                !text.contains(invented),
                "{} names {invented}",
                path.display()
            );
        }
    }
}
