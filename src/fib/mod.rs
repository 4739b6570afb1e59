//! Fraud Intelligence Blockchain authentication.

pub use crate::generated::fib::{types, Client};

#[allow(dead_code)] // used by the fib session
mod sign;
