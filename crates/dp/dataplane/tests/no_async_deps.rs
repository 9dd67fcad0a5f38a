//! Architecture invariant (I): the data plane never links an async runtime or a control-plane
//! crate, and the control plane never depends on a data-plane crate. Checked on the resolved
//! dependency graph from `cargo metadata` for the whole workspace.
//!
//! Edges followed: normal and build dependencies, transitively (what ends up linked), plus the
//! direct dev-dependencies of each root (its own tests must respect the layering too).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde_json::Value;

const FORBIDDEN_IN_DP: [&str; 5] = [
    "tokio",
    "async-std",
    "smol",
    "async-executor",
    "futures-executor",
];

/// Fewest dp crates the workspace has (fec, packetize, pacer, net, dataplane; seal moved to
/// common/ to be shared with the client); a smaller count means the walker no longer finds
/// them and the check would pass vacuously. Raise it when dp crates are added.
const MIN_DP_CRATES: usize = 5;
const MIN_CP_CRATES: usize = 1;

struct Graph {
    /// id → (name, manifest path)
    pkgs: HashMap<String, (String, String)>,
    /// id → [(dep id, is_dev_only)]
    edges: HashMap<String, Vec<(String, bool)>>,
    workspace: BTreeSet<String>,
}

impl Graph {
    fn from_metadata(meta: &Value) -> Graph {
        let mut pkgs = HashMap::new();
        for p in meta["packages"].as_array().expect("packages") {
            let id = p["id"].as_str().unwrap().to_owned();
            pkgs.insert(
                id,
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["manifest_path"].as_str().unwrap().to_owned(),
                ),
            );
        }
        let mut edges = HashMap::new();
        for n in meta["resolve"]["nodes"]
            .as_array()
            .expect("resolve.nodes (cargo metadata without --no-deps)")
        {
            let id = n["id"].as_str().unwrap().to_owned();
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let kinds = d["dep_kinds"].as_array().unwrap();
                    let dev_only = !kinds.is_empty()
                        && kinds.iter().all(|k| k["kind"].as_str() == Some("dev"));
                    (d["pkg"].as_str().unwrap().to_owned(), dev_only)
                })
                .collect();
            edges.insert(id, deps);
        }
        let workspace = meta["workspace_members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        Graph {
            pkgs,
            edges,
            workspace,
        }
    }

    fn name(&self, id: &str) -> &str {
        &self.pkgs[id].0
    }

    fn members_under(&self, dir: &str) -> Vec<String> {
        self.workspace
            .iter()
            .filter(|id| {
                let (name, manifest) = &self.pkgs[*id];
                name.starts_with("strahl-") && manifest.replace('\\', "/").contains(dir)
            })
            .cloned()
            .collect()
    }

    /// Every (path) from `root` to a package matching `bad`, as readable chains.
    fn violations(&self, root: &str, bad: &dyn Fn(&str, &str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = Vec::new();
        for (dep, _dev) in self.edges.get(root).into_iter().flatten() {
            stack.push((dep.clone(), vec![self.name(root).to_owned()]));
        }
        while let Some((id, chain)) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let (name, manifest) = &self.pkgs[&id];
            let mut chain = chain;
            chain.push(name.clone());
            if bad(name, manifest) {
                out.push(chain.join(" → "));
                continue;
            }
            for (dep, dev) in self.edges.get(&id).into_iter().flatten() {
                if !dev {
                    stack.push((dep.clone(), chain.clone()));
                }
            }
        }
        out
    }
}

fn is_cp(name: &str, manifest: &str) -> bool {
    name.starts_with("strahl-") && manifest.replace('\\', "/").contains("/crates/cp/")
}

fn is_dp(name: &str, manifest: &str) -> bool {
    name.starts_with("strahl-") && manifest.replace('\\', "/").contains("/crates/dp/")
}

fn dp_forbidden(name: &str, manifest: &str) -> bool {
    FORBIDDEN_IN_DP.contains(&name) || is_cp(name, manifest)
}

fn workspace_metadata() -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

#[test]
fn data_plane_never_reaches_async_runtimes_or_control_plane() {
    let g = Graph::from_metadata(&workspace_metadata());
    let dp = g.members_under("/crates/dp/");
    let names: Vec<&str> = dp.iter().map(|id| g.name(id)).collect();
    assert!(
        dp.len() >= MIN_DP_CRATES,
        "found only {names:?} under crates/dp/"
    );
    assert!(names.contains(&"strahl-dataplane"), "{names:?}");
    let mut all = Vec::new();
    for id in &dp {
        all.extend(g.violations(id, &dp_forbidden));
    }
    assert!(
        all.is_empty(),
        "data-plane crates reach forbidden packages:\n{}",
        all.join("\n")
    );
}

#[test]
fn control_plane_never_depends_on_data_plane() {
    let g = Graph::from_metadata(&workspace_metadata());
    let cp = g.members_under("/crates/cp/");
    let names: Vec<&str> = cp.iter().map(|id| g.name(id)).collect();
    assert!(
        cp.len() >= MIN_CP_CRATES,
        "found only {names:?} under crates/cp/"
    );
    assert!(names.contains(&"strahl-control"), "{names:?}");
    let mut all = Vec::new();
    for id in &cp {
        all.extend(g.violations(id, &is_dp));
    }
    assert!(
        all.is_empty(),
        "control-plane crates depend on data-plane crates:\n{}",
        all.join("\n")
    );
}

/// The walker itself must catch a violation: a synthetic graph where a dp crate reaches tokio
/// through a helper, and a dev-only edge of a dependency (not linked) that must be ignored.
#[test]
fn walker_detects_transitive_violation_and_ignores_deep_dev_edges() {
    let meta = serde_json::json!({
        "packages": [
            {"id": "dp", "name": "strahl-x", "manifest_path": "/w/crates/dp/x/Cargo.toml"},
            {"id": "h", "name": "helper", "manifest_path": "/r/helper/Cargo.toml"},
            {"id": "t", "name": "tokio", "manifest_path": "/r/tokio/Cargo.toml"},
            {"id": "ok", "name": "strahl-y", "manifest_path": "/w/crates/dp/y/Cargo.toml"},
            {"id": "c", "name": "strahl-control", "manifest_path": "/w/crates/cp/control/Cargo.toml"}
        ],
        "workspace_members": ["dp", "ok", "c"],
        "resolve": {"nodes": [
            {"id": "dp", "deps": [{"pkg": "h", "dep_kinds": [{"kind": null}]}]},
            {"id": "h", "deps": [{"pkg": "t", "dep_kinds": [{"kind": null}]}]},
            {"id": "t", "deps": []},
            {"id": "ok", "deps": [{"pkg": "h2", "dep_kinds": [{"kind": "dev"}]}]},
            {"id": "c", "deps": [{"pkg": "ok", "dep_kinds": [{"kind": "dev"}]}]}
        ]}
    });
    let mut meta = meta;
    // "ok" has a direct dev edge to a missing package in the fixture; give it a clean target.
    meta["packages"].as_array_mut().unwrap().push(
        serde_json::json!({"id": "h2", "name": "helper2", "manifest_path": "/r/h2/Cargo.toml"}),
    );
    meta["resolve"]["nodes"].as_array_mut().unwrap().push(
        serde_json::json!({"id": "h2", "deps": [{"pkg": "t", "dep_kinds": [{"kind": "dev"}]}]}),
    );
    let g = Graph::from_metadata(&meta);
    assert_eq!(g.members_under("/crates/dp/").len(), 2);
    assert_eq!(
        g.violations("dp", &dp_forbidden),
        vec!["strahl-x → helper → tokio".to_owned()]
    );
    assert!(
        g.violations("ok", &dp_forbidden).is_empty(),
        "dev-only edge of a dependency is not linked"
    );
    // A cp crate with a dev-dependency on a dp crate is still a layering violation.
    assert_eq!(
        g.violations("c", &is_dp),
        vec!["strahl-control → strahl-y".to_owned()]
    );
}
