//! Rules of the workspace's shape, kept by tests rather than by memory.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::process::Command;

    /// Normal (non-dev) dependencies of each workspace member on other members.
    fn internal_dependencies() -> BTreeMap<String, Vec<String>> {
        let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(super::super::workspace_root())
            .output()
            .expect("run cargo metadata");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("metadata is JSON");
        let packages = metadata["packages"].as_array().expect("packages");
        let members: Vec<String> = packages
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        packages
            .iter()
            .map(|p| {
                let deps = p["dependencies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| d["kind"].is_null())
                    .map(|d| d["name"].as_str().unwrap().to_string())
                    .filter(|d| members.contains(d))
                    .collect();
                (p["name"].as_str().unwrap().to_string(), deps)
            })
            .collect()
    }

    /// **Architecture invariant:** connectors depend on `weft-core` and their own drivers
    /// only, never on each other or on the planner; the planner never names a connector.
    #[test]
    fn layering() {
        let deps = internal_dependencies();
        let connectors: Vec<&String> = deps
            .keys()
            .filter(|name| {
                [
                    "weft-sqlite",
                    "weft-parquet",
                    "weft-postgres",
                    "weft-flightsql",
                ]
                .contains(&name.as_str())
            })
            .collect();
        assert!(
            !connectors.is_empty(),
            "no connector crates found: {deps:?}"
        );
        for connector in &connectors {
            assert_eq!(
                deps[*connector],
                ["weft-core"],
                "`{connector}` may depend on weft-core only among Weft's crates"
            );
        }
        for dep in &deps["weft-planner"] {
            assert_eq!(dep, "weft-core", "weft-planner must not depend on `{dep}`");
        }
        // The semantic layer builds on the planner and never names a connector.
        for dep in &deps["weft-semantic"] {
            assert!(
                ["weft-core", "weft-planner"].contains(&dep.as_str()),
                "weft-semantic must not depend on `{dep}`"
            );
        }
        assert!(
            deps["weft-core"].is_empty(),
            "weft-core depends on no Weft crate"
        );
    }

    /// **Invariant:** one version of Arrow, Parquet, DataFusion and object_store in the tree.
    /// A second Arrow (say arrow-flight 60 beside DataFusion 55's arrow 59) makes Arrow
    /// values from one half unusable in the other.
    #[test]
    fn one_arrow_version() {
        let lock = std::fs::read_to_string(super::super::workspace_root().join("Cargo.lock"))
            .expect("read Cargo.lock");
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut name = None;
        for line in lock.lines() {
            if let Some(n) = line.strip_prefix("name = ") {
                name = Some(n.trim_matches('"').to_string());
            } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
                versions
                    .entry(n)
                    .or_default()
                    .push(v.trim_matches('"').to_string());
            }
        }
        for krate in [
            "arrow",
            "arrow-array",
            "arrow-flight",
            "parquet",
            "datafusion",
            "object_store",
        ] {
            let found = versions.get(krate).cloned().unwrap_or_default();
            assert!(
                found.len() <= 1,
                "`{krate}` appears in several versions: {found:?}"
            );
        }
        assert!(versions.contains_key("arrow"), "Cargo.lock has no arrow");
    }

    /// Every crate's root says what it is for, in a `//!` header.
    #[test]
    fn every_crate_root_has_a_header() {
        let root = super::super::workspace_root();
        let mut roots = vec![
            root.join("xtask/src/main.rs"),
            root.join("integration-tests/src/lib.rs"),
        ];
        for entry in std::fs::read_dir(root.join("crates")).unwrap() {
            let dir = entry.unwrap().path();
            for file in ["src/lib.rs", "src/main.rs"] {
                if dir.join(file).is_file() {
                    roots.push(dir.join(file));
                }
            }
        }
        for path in roots {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("//! "),
                "{} lacks a `//!` header",
                path.display()
            );
        }
    }
}
