//! The progenitor-generated clients, one private module per OpenAPI document.
//!
//! Each module `include!`s the code build.rs generated and implements progenitor's hooks by
//! handing every request to [`crate::transport::Context`], so that one piece of code attaches
//! credentials and reads responses for all five services.

/// A generated client, built for a base URL with a client and a context.
pub trait Api: Sized {
    /// The client for `base_url`, sending with `http` and `context`.
    fn with_context(
        base_url: &str,
        http: reqwest::Client,
        context: crate::transport::Context,
    ) -> Self;
}

macro_rules! generated_client {
    ($module:ident, $file:literal) => {
        #[allow(
            missing_docs,
            unused_imports,
            clippy::all,
            clippy::pedantic,
            rustdoc::all,
            unreachable_pub
        )]
        pub(crate) mod $module {
            include!(concat!(env!("OUT_DIR"), "/", $file));

            impl ClientHooks<crate::transport::Context> for Client {
                async fn pre<E>(
                    &self,
                    request: &mut reqwest::Request,
                    _info: &OperationInfo,
                ) -> std::result::Result<(), Error<E>> {
                    // progenitor keeps only a string of a hook's error: the error itself is
                    // parked, for the conversion into `crate::Error` to take back.
                    self.inner()
                        .prepare(request)
                        .await
                        .map_err(|e| Error::Custom(crate::transport::errors::park(e)))
                }

                async fn exec(
                    &self,
                    request: reqwest::Request,
                    info: &OperationInfo,
                ) -> reqwest::Result<reqwest::Response> {
                    self.inner()
                        .execute(self.client(), request, info.operation_id)
                        .await
                }
            }

            impl crate::generated::Api for Client {
                fn with_context(
                    base_url: &str,
                    http: reqwest::Client,
                    context: crate::transport::Context,
                ) -> Self {
                    Self::new_with_client(base_url, http, context)
                }
            }
        }
    };
}

// One `generated_client!` per document whose service's feature is on: build.rs lists them.
include!(concat!(env!("OUT_DIR"), "/clients.rs"));
