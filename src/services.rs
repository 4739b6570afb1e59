//! The enabled services, in the order of their documents in `openapi/`: the one list of
//! services outside their own modules, which build.rs writes (a module per document whose
//! feature is on, its provider type named by the document's `info.x-tokensmith.service`).
//! [`crate::env::profiles`] reads it, and the command offers every profile it gives, so that a
//! new service is in the command with no edit there.

#[allow(unused_imports)]
use crate::env::Profile;

include!(concat!(env!("OUT_DIR"), "/profiles.rs"));
