//! The progenitor-generated clients, one private module per OpenAPI document.

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
                    self.inner().prepare(request);
                    Ok(())
                }
            }
        }
    };
}

generated_client!(s7risk, "s7risk.rs");
generated_client!(weavr, "weavr.rs");
generated_client!(accounts, "accounts.rs");
generated_client!(passwordsafe, "passwordsafe.rs");
generated_client!(fib, "fib.rs");
