//! The HTTP-stack examples run against the sandbox as README.md says they do; each asserts
//! what it prints (the step-up answered once, the requests accepted).

#[cfg(all(
    feature = "middleware",
    feature = "sandbox",
    feature = "weavr",
    feature = "passwordsafe"
))]
#[path = "../examples/middleware.rs"]
mod middleware_example;

#[cfg(all(
    feature = "middleware",
    feature = "sandbox",
    feature = "weavr",
    feature = "passwordsafe"
))]
#[test]
fn the_middleware_example_runs_against_the_sandbox() {
    middleware_example::main().unwrap();
}

#[cfg(all(
    feature = "tower",
    feature = "sandbox",
    feature = "weavr",
    feature = "passwordsafe"
))]
#[path = "../examples/tower.rs"]
mod tower_example;

#[cfg(all(
    feature = "tower",
    feature = "sandbox",
    feature = "weavr",
    feature = "passwordsafe"
))]
#[test]
fn the_tower_example_runs_against_the_sandbox() {
    tower_example::main().unwrap();
}
