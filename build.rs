//! Generates one typed client per OpenAPI document in `openapi/` with progenitor.
//!
//! Each document becomes `$OUT_DIR/<api>.rs`, `include!`d by `src/generated.rs`. Schemas marked
//! `x-secret: true` in a document are replaced by `crate::secret::SecretString`, so no generated
//! type can print a password or token through `Debug`. A schema with `x-tokensmith-type: <path>`
//! is replaced by that hand-written type (where the wire format needs what typify cannot give,
//! such as a form's documented field order).
//!
//! progenitor 0.15 panics on an operation whose success statuses mix a JSON body and no body
//! (weavr's logout: 200 `{url}` or 204). Such bodiless statuses are taken out of what progenitor
//! sees and put back into the generated method as success arms that answer the body type's
//! `Default` (every field absent), so a 204 is a success with its own status, not an
//! unexpected response.

use std::path::{Path, PathBuf};

/// A service, as its document's `info.x-tokensmith` names it.
struct Service {
    /// The document's file stem: the module, the cargo feature and `Service::name()`.
    module: String,
    /// The `tokensmith::Service` variant, which is also the name of the module's provider type.
    variant: String,
    /// The variant's doc comment.
    summary: String,
}

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=openapi");
    if let Err(reason) = run(&out_dir) {
        // A panic would print a backtrace hint and hide which document was at fault.
        eprintln!("error: {reason}");
        std::process::exit(1);
    }
}

/// The one list of services is `openapi/*.yaml`: every document names its service, and each
/// whose cargo feature is on gets its generated client.
fn run(out_dir: &Path) -> Result<(), String> {
    let mut services = Vec::new();
    let mut documents: Vec<PathBuf> = std::fs::read_dir("openapi")
        .map_err(|e| format!("openapi/: {e}"))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    documents.sort();
    let mut clients = String::new();
    let mut profiles = String::new();
    for spec_path in &documents {
        println!("cargo:rerun-if-changed={}", spec_path.display());
        let in_doc = |reason: String| format!("{}: {reason}", spec_path.display());
        let text =
            std::fs::read_to_string(spec_path).map_err(|e| in_doc(format!("cannot read: {e}")))?;
        let raw: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| in_doc(format!("not valid YAML: {e}")))?;
        let service = service_of(spec_path, &raw).map_err(in_doc)?;
        // Only the services whose cargo feature is on (cargo tells build scripts which are).
        let feature = format!("CARGO_FEATURE_{}", service.module.to_uppercase());
        if std::env::var_os(feature).is_some() {
            let out_file = out_dir.join(format!("{}.rs", service.module));
            generate(raw, &out_file).map_err(in_doc)?;
            clients.push_str(&format!(
                "generated_client!({}, \"{}.rs\");\n",
                service.module, service.module
            ));
            profiles.push_str(&format!(
                "    Profile::all::<crate::{}::{}>,\n",
                service.module, service.variant
            ));
        }
        services.push(service);
    }
    write(&out_dir.join("clients.rs"), &clients)?;
    if profiles.is_empty() && std::env::var_os("CARGO_FEATURE_CLI").is_some() {
        let names: Vec<&str> = services.iter().map(|s| s.module.as_str()).collect();
        profiles = format!(
            "compile_error!(\"the tokensmith command needs at least one service feature: {}\");\n",
            names.join(", ")
        );
    } else {
        profiles = format!(
            "/// Each enabled service's profiles.\n\
             pub(crate) const SERVICES: &[fn() -> Vec<Profile>] = &[\n{profiles}];\n"
        );
    }
    write(&out_dir.join("profiles.rs"), &profiles)?;
    write(&out_dir.join("services.rs"), &service_enum(&services))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What a document's `info.x-tokensmith` says of its service.
fn service_of(path: &Path, raw: &serde_yaml::Value) -> Result<Service, String> {
    let module = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .ok_or("the file name must be the service's module name: lowercase letters and digits")?
        .to_owned();
    let meta = raw
        .get("info")
        .and_then(|info| info.get("x-tokensmith"))
        .ok_or("info.x-tokensmith (service, summary) is missing")?;
    let field = |name: &str| {
        meta.get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or(format!("info.x-tokensmith.{name} is missing"))
    };
    let variant = field("service")?;
    if !variant.starts_with(|c: char| c.is_ascii_uppercase())
        || !variant.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(format!(
            "info.x-tokensmith.service {variant:?} is not a type name"
        ));
    }
    Ok(Service {
        module,
        variant,
        summary: field("summary")?,
    })
}

/// `tokensmith::Service`: one variant per document, whatever features are on, so that the
/// enum is the same in every build.
fn service_enum(services: &[Service]) -> String {
    let mut text = String::from(
        "/// Which service an error or token came from: one variant per document in `openapi/`.\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]\n\
         #[non_exhaustive]\n\
         pub enum Service {\n",
    );
    for service in services {
        text.push_str(&format!(
            "    #[doc = {:?}]\n    {},\n",
            service.summary, service.variant
        ));
    }
    text.push_str(
        "}\n\nimpl Service {\n\
         \x20   /// The short name used in logs and messages (`s7risk`, `weavr`, …): the service's\n\
         \x20   /// module and cargo feature.\n\
         \x20   pub fn name(self) -> &'static str {\n\
         \x20       match self {\n",
    );
    for service in services {
        text.push_str(&format!(
            "            Service::{} => {:?},\n",
            service.variant, service.module
        ));
    }
    text.push_str("        }\n    }\n}\n");
    text
}

fn generate(raw: serde_yaml::Value, out_file: &Path) -> Result<(), String> {
    let mut spec: openapiv3::OpenAPI = serde_yaml::from_value(raw.clone())
        .map_err(|e| format!("not a valid OpenAPI 3.0 document: {e}"))?;
    if !spec.openapi.starts_with("3.0.") {
        return Err(format!(
            "progenitor accepts OpenAPI 3.0.x only, this document declares {}",
            spec.openapi
        ));
    }
    let bodiless = take_bodiless_successes(&mut spec);
    check_one_body_type_per_outcome(&spec)?;

    let mut settings = progenitor::GenerationSettings::new();
    settings
        .with_interface(progenitor::InterfaceStyle::Positional)
        .with_hooks(progenitor::HooksMode::Expected)
        .with_inner_type(quote_path("crate::transport::Context"));
    for name in schemas_with(&raw, "x-secret")
        .into_iter()
        .filter(|(_, v)| v.as_bool() == Some(true))
    {
        settings.with_replacement(&name.0, "crate::secret::SecretString", std::iter::empty());
    }
    for (name, path) in schemas_with(&raw, "x-tokensmith-type") {
        let path = path
            .as_str()
            .ok_or_else(|| format!("schema {name}: x-tokensmith-type must be a Rust path"))?;
        settings.with_replacement(&name, path, std::iter::empty());
    }

    let mut generator = progenitor::Generator::new(&settings);
    // progenitor reports some unsupported constructs by panicking; keep the document's name.
    let tokens = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        generator.generate_tokens(&spec)
    }))
    .map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("progenitor panicked: {msg}")
    })?
    .map_err(|e| format!("progenitor rejected it: {e}"))?;
    let mut file = syn::parse2::<syn::File>(tokens)
        .map_err(|e| format!("generated code does not parse: {e}"))?;
    for (operation_id, statuses) in &bodiless {
        put_back_bodiless_successes(&mut file, operation_id, statuses)?;
    }
    let code = prettyplease::unparse(&file);
    std::fs::write(out_file, code).map_err(|e| format!("cannot write {}: {e}", out_file.display()))
}

fn quote_path(path: &str) -> proc_macro2::TokenStream {
    path.parse().expect("a valid Rust path")
}

/// The component schemas that carry the extension `key`, with its value.
fn schemas_with(raw: &serde_yaml::Value, key: &str) -> Vec<(String, serde_yaml::Value)> {
    let Some(schemas) = raw
        .get("components")
        .and_then(|c| c.get("schemas"))
        .and_then(|s| s.as_mapping())
    else {
        return Vec::new();
    };
    schemas
        .iter()
        .filter_map(|(name, schema)| Some((name.as_str()?.to_owned(), schema.get(key)?.clone())))
        .collect()
}

/// Removes, from operations that also have a success status with a JSON body, the success
/// statuses that have no body; answers which ones, per operationId.
fn take_bodiless_successes(spec: &mut openapiv3::OpenAPI) -> Vec<(String, Vec<u16>)> {
    let resolved_has_body = |components: &Option<openapiv3::Components>,
                             response: &openapiv3::ReferenceOr<openapiv3::Response>|
     -> bool {
        match response {
            openapiv3::ReferenceOr::Item(r) => !r.content.is_empty(),
            openapiv3::ReferenceOr::Reference { reference } => reference
                .strip_prefix("#/components/responses/")
                .and_then(|name| components.as_ref()?.responses.get(name))
                .and_then(|r| r.as_item())
                .is_some_and(|r| !r.content.is_empty()),
        }
    };
    let components = spec.components.clone();
    let mut taken = Vec::new();
    for item in spec.paths.paths.values_mut() {
        let openapiv3::ReferenceOr::Item(item) = item else {
            continue;
        };
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            let successes: Vec<(u16, bool)> = op
                .responses
                .responses
                .iter()
                .filter_map(|(status, response)| match status {
                    openapiv3::StatusCode::Code(c) if (200..300).contains(c) => {
                        Some((*c, resolved_has_body(&components, response)))
                    }
                    _ => None,
                })
                .collect();
            if !successes.iter().any(|(_, body)| *body) {
                continue;
            }
            let empty: Vec<u16> = successes
                .iter()
                .filter(|(_, body)| !body)
                .map(|(c, _)| *c)
                .collect();
            if empty.is_empty() {
                continue;
            }
            op.responses.responses.retain(
                |status, _| !matches!(status, openapiv3::StatusCode::Code(c) if empty.contains(c)),
            );
            let id = op.operation_id.clone().unwrap_or_default();
            taken.push((id, empty));
        }
    }
    taken
}

/// Adds to the generated `operation_id` method one success arm per status in `statuses`,
/// answering the body type's `Default` with the response's own status and headers.
fn put_back_bodiless_successes(
    file: &mut syn::File,
    operation_id: &str,
    statuses: &[u16],
) -> Result<(), String> {
    let not_found = || {
        format!(
            "operation {operation_id}: the generated method's status match was not found, so \
             its bodiless success statuses {statuses:?} cannot be put back"
        )
    };
    let method = file
        .items
        .iter_mut()
        .filter_map(|item| match item {
            syn::Item::Impl(block) => Some(block),
            _ => None,
        })
        .flat_map(|block| block.items.iter_mut())
        .find_map(|item| match item {
            syn::ImplItem::Fn(f) if f.sig.ident == operation_id => Some(f),
            _ => None,
        })
        .ok_or_else(not_found)?;
    let matched = method
        .block
        .stmts
        .iter_mut()
        .rev()
        .find_map(|stmt| match stmt {
            syn::Stmt::Expr(syn::Expr::Match(m), None) => Some(m),
            _ => None,
        })
        .ok_or_else(not_found)?;
    // Before the catch-all, which is the last arm.
    let at = matched.arms.len().checked_sub(1).ok_or_else(not_found)?;
    for status in statuses.iter().rev() {
        let arm: syn::Arm = syn::parse_str(&format!(
            "{status}u16 => Ok(ResponseValue::new(::std::default::Default::default(), \
             response.status(), response.headers().clone())),"
        ))
        .map_err(|e| format!("operation {operation_id}: {e}"))?;
        matched.arms.insert(at, arm);
    }
    Ok(())
}

/// progenitor 0.15 asserts (and panics without naming the operation) when one operation has
/// more than one success or more than one error body type; say which operation instead.
fn check_one_body_type_per_outcome(spec: &openapiv3::OpenAPI) -> Result<(), String> {
    for (path, method, op) in spec.operations() {
        let name = op.operation_id.as_deref().unwrap_or("(no operationId)");
        let mut success = std::collections::BTreeSet::new();
        let mut error = std::collections::BTreeSet::new();
        for (status, response) in &op.responses.responses {
            let is_success = matches!(status, openapiv3::StatusCode::Code(c) if (100..400).contains(c))
                || matches!(status, openapiv3::StatusCode::Range(r) if *r < 4);
            let body = body_type(spec, response);
            if is_success {
                success.insert(body);
            } else {
                error.insert(body);
            }
        }
        if let Some(default) = &op.responses.default {
            error.insert(body_type(spec, default));
        }
        for (kind, set) in [("success", &success), ("error", &error)] {
            if set.len() > 1 {
                return Err(format!(
                    "operation {name} ({} {path}) has {} different {kind} body types {:?}; \
                     progenitor needs one: give every {kind} status the same $ref'd schema",
                    method.to_uppercase(),
                    set.len(),
                    set
                ));
            }
        }
    }
    Ok(())
}

fn body_type(
    spec: &openapiv3::OpenAPI,
    response: &openapiv3::ReferenceOr<openapiv3::Response>,
) -> String {
    let resolved = match response {
        openapiv3::ReferenceOr::Item(r) => Some(r),
        openapiv3::ReferenceOr::Reference { reference } => reference
            .strip_prefix("#/components/responses/")
            .and_then(|name| spec.components.as_ref()?.responses.get(name))
            .and_then(|r| r.as_item()),
    };
    match resolved {
        None => format!("unresolvable {response:?}"),
        Some(r) => match r.content.iter().next() {
            None => "no body".to_owned(),
            Some((media, mt)) => match &mt.schema {
                Some(openapiv3::ReferenceOr::Reference { reference }) => {
                    format!("{media} {reference}")
                }
                Some(_) => format!("{media} inline schema"),
                None => format!("{media} without schema"),
            },
        },
    }
}
