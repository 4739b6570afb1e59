//! README.md's statements of fact about the crate itself, held to the manifest and the library:
//! the minimum Rust version and the licence, the table of cargo features, and the command's
//! providers.

/// README.md's text.
fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The text of README.md's section `title`, up to the next section.
fn section(title: &str) -> String {
    readme()
        .split(&format!("\n## {title}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has a section {title}"))
        .split("\n## ")
        .next()
        .unwrap()
        .to_owned()
}

/// `text` with every run of whitespace, line breaks included, as one space.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_readme_states_the_manifest_s_rust_version_and_licence() {
    let text = flat(&section("Requirements and licence"));
    let version = env!("CARGO_PKG_RUST_VERSION");
    assert_eq!(version, "1.89");
    assert!(text.contains(&format!("Rust {version} or newer")), "{text}");
    let licence = env!("CARGO_PKG_LICENSE");
    assert_eq!(licence, "MIT OR Apache-2.0");
    assert!(
        text.contains(&format!("Licensed under {licence}.")),
        "{text}"
    );
}

#[test]
fn the_feature_table_names_every_feature_of_the_manifest_and_no_other() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let features = manifest
        .split("\n[features]\n")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    let mut declared: Vec<&str> = features
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(" = ").map(|(name, _)| name))
        .filter(|name| *name != "default")
        .collect();
    declared.sort_unstable();
    let table = section("Cargo features");
    let mut listed: Vec<&str> = table
        .lines()
        .filter(|line| line.starts_with("| `"))
        .flat_map(|line| {
            line.split('|').nth(1).unwrap().split(',').map(|cell| {
                cell.trim()
                    .strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .unwrap()
            })
        })
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, declared);
    // The default column says "on" exactly for the default features.
    let defaults: Vec<&str> = manifest
        .lines()
        .find(|line| line.starts_with("default = "))
        .unwrap()
        .split('"')
        .skip(1)
        .step_by(2)
        .collect();
    for line in table.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let on = cells[2] == "on";
        for name in cells[1].split(',').map(|c| c.trim().trim_matches('`')) {
            assert_eq!(on, defaults.contains(&name), "{name}");
        }
    }
}

#[cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]
#[test]
fn the_command_s_providers_are_the_library_s_profiles() {
    let text = flat(&section("The sandbox and the command"));
    let named = text
        .split("(#configuration-from-the-environment) (")
        .nth(1)
        .expect("the list of providers")
        .split(')')
        .next()
        .unwrap();
    let mut named: Vec<&str> = named
        .split(',')
        .map(|name| name.trim().trim_matches('`'))
        .collect();
    named.sort_unstable();
    let mut profiles: Vec<&str> = tokensmith::env::profiles()
        .iter()
        .map(|profile| profile.name())
        .collect();
    profiles.sort_unstable();
    assert_eq!(named, profiles);
}
