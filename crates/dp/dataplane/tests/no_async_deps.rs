//! Architecture invariant (I): the crate rules of ARCHITECTURE.md §2, by crate role, checked on
//! the resolved dependency graph from `cargo metadata` for the whole workspace.
//!
//! Roles ([`Role`]) come from `[package.metadata.strahl] role = "…"` when a crate declares one,
//! else from [`ROLES`] (keyed by package name) — never from where the crate sits on disk. Every
//! workspace member must have a role, and every [`ROLES`] entry must be a member.
//!
//! Rules ([`check`]):
//! - `dp`: never reaches tokio or another async runtime ([`FORBIDDEN_IN_DP`]) nor a `cp` crate;
//! - `cp`: never depends on a `dp` crate;
//! - `common`: shared by both planes, so it depends on neither `dp` nor `cp`;
//! - shipped crates (`dp`, `cp`, `common`, `client`) never depend on a `test` crate (testkit,
//!   e2e) or `bench` except as a dev-dependency, nor on the `client`, except the client itself;
//! - `bench` and the e2e suite (`test` crates other than a helper library) are leaves: no
//!   workspace crate depends on `bench`, and only dev-dependencies may name a `test` crate.
//!
//! Edges followed: normal and build dependencies, transitively (what ends up linked), plus the
//! direct dev-dependencies of each root (its own tests must respect the layering too), except
//! for the test-crate rule, which is about what ships (normal and build edges only).

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

/// What a crate is for (ARCHITECTURE.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Shared by both planes (IPC contract, config, metrics, seal).
    Common,
    /// Data plane: pinned cores, no async runtime.
    Dp,
    /// Control plane: tokio.
    Cp,
    /// Test-only helpers and suites.
    Test,
    /// Benchmarks.
    Bench,
    /// The native reference client.
    Client,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "common" => Role::Common,
            "dp" => Role::Dp,
            "cp" => Role::Cp,
            "test" => Role::Test,
            "bench" => Role::Bench,
            "client" => Role::Client,
            _ => return None,
        })
    }

    /// Built into what the appliance (or the client) ships.
    fn shipped(self) -> bool {
        matches!(self, Role::Common | Role::Dp | Role::Cp | Role::Client)
    }
}

/// Every workspace crate's role (a crate may instead declare `[package.metadata.strahl] role`).
const ROLES: &[(&str, Role)] = &[
    ("strahl-ipc", Role::Common),
    ("strahl-config", Role::Common),
    ("strahl-metrics", Role::Common),
    ("strahl-seal", Role::Common),
    ("strahl-statefile", Role::Common),
    ("strahl-fec", Role::Dp),
    ("strahl-packetize", Role::Dp),
    ("strahl-pacer", Role::Dp),
    ("strahl-net", Role::Dp),
    ("strahl-runtime", Role::Dp),
    ("strahl-capture", Role::Dp),
    ("strahl-encode", Role::Dp),
    ("strahl-audio", Role::Dp),
    ("strahl-dataplane", Role::Dp),
    ("strahl-control", Role::Cp),
    ("strahl-gamestream", Role::Cp),
    ("strahl-rtsp", Role::Cp),
    ("strahl-enet", Role::Cp),
    ("strahl-input", Role::Cp),
    ("strahl-status", Role::Cp),
    ("strahl-native", Role::Cp),
    ("strahl-client", Role::Client),
    ("strahl-testkit", Role::Test),
    ("strahl-e2e", Role::Test),
    ("strahl-vmlab", Role::Test),
    ("strahl-bench", Role::Bench),
];

/// Test crates that other crates may use as a dev-dependency (helpers, not suites).
const TEST_HELPERS: &[&str] = &["strahl-testkit", "strahl-vmlab"];

struct Graph {
    /// id → (name, manifest path)
    pkgs: HashMap<String, (String, String)>,
    /// id → role declared in `[package.metadata.strahl]`
    declared: HashMap<String, String>,
    /// id → [(dep id, is_dev_only)]
    edges: HashMap<String, Vec<(String, bool)>>,
    workspace: BTreeSet<String>,
}

impl Graph {
    fn from_metadata(meta: &Value) -> Graph {
        let mut pkgs = HashMap::new();
        let mut declared = HashMap::new();
        for p in meta["packages"].as_array().expect("packages") {
            let id = p["id"].as_str().unwrap().to_owned();
            if let Some(r) = p["metadata"]["strahl"]["role"].as_str() {
                declared.insert(id.clone(), r.to_owned());
            }
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
            declared,
            edges,
            workspace,
        }
    }

    fn name(&self, id: &str) -> &str {
        &self.pkgs[id].0
    }

    /// A workspace member's role: declared in its manifest, else from [`ROLES`]. Packages
    /// outside the workspace have none.
    fn role(&self, id: &str) -> Option<Role> {
        if !self.workspace.contains(id) {
            return None;
        }
        match self.declared.get(id) {
            Some(r) => Role::parse(r),
            None => ROLES
                .iter()
                .find(|(n, _)| *n == self.name(id))
                .map(|(_, r)| *r),
        }
    }

    fn members(&self, role: Role) -> Vec<String> {
        self.workspace
            .iter()
            .filter(|id| self.role(id) == Some(role))
            .cloned()
            .collect()
    }

    /// Chains from `root` to a package `bad` accepts; `root_dev`: follow the root's own
    /// dev-dependencies too (deeper dev edges are never linked).
    fn walk(&self, root: &str, root_dev: bool, bad: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = Vec::new();
        for (dep, dev) in self.edges.get(root).into_iter().flatten() {
            if root_dev || !dev {
                stack.push((dep.clone(), vec![self.name(root).to_owned()]));
            }
        }
        while let Some((id, chain)) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let name = &self.pkgs[&id].0;
            let mut chain = chain;
            chain.push(name.clone());
            if bad(&id) {
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

/// Every rule of the module header over `g`, as "rule: chain" lines (empty when all hold).
fn check(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for id in &g.workspace {
        if g.role(id).is_none() {
            out.push(format!(
                "role: workspace member {} has no role (add it to ROLES or declare \
                 [package.metadata.strahl] role)",
                g.name(id)
            ));
        }
    }
    for (name, _) in ROLES {
        if !g.workspace.iter().any(|id| g.name(id) == *name) {
            out.push(format!(
                "role: ROLES names {name}, which is not a workspace member"
            ));
        }
    }
    let is = |role: Role| move |id: &str| g.role(id) == Some(role);
    let mut rule = |what: &str, roots: Vec<String>, root_dev: bool, bad: &dyn Fn(&str) -> bool| {
        for root in roots {
            for chain in g.walk(&root, root_dev, bad) {
                out.push(format!("{what}: {chain}"));
            }
        }
    };
    rule(
        "dp reaches an async runtime or a cp crate",
        g.members(Role::Dp),
        true,
        &|id| FORBIDDEN_IN_DP.contains(&g.name(id)) || is(Role::Cp)(id),
    );
    rule("cp depends on dp", g.members(Role::Cp), true, &is(Role::Dp));
    rule(
        "common depends on dp or cp",
        g.members(Role::Common),
        true,
        &|id| is(Role::Dp)(id) || is(Role::Cp)(id),
    );
    let shipped: Vec<String> = g
        .workspace
        .iter()
        .filter(|id| g.role(id).is_some_and(Role::shipped))
        .cloned()
        .collect();
    rule(
        "shipped crate depends on a test or bench crate (dev-dependencies only)",
        shipped.clone(),
        false,
        &|id| is(Role::Test)(id) || is(Role::Bench)(id),
    );
    let not_client: Vec<String> = shipped
        .into_iter()
        .filter(|id| g.role(id) != Some(Role::Client))
        .collect();
    rule(
        "appliance crate depends on the client",
        not_client,
        true,
        &is(Role::Client),
    );
    rule(
        "bench or a test suite is not a leaf",
        g.workspace.iter().cloned().collect(),
        true,
        &|id| is(Role::Bench)(id) || (is(Role::Test)(id) && !TEST_HELPERS.contains(&g.name(id))),
    );
    out
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
fn every_crate_rule_of_the_architecture_holds() {
    let g = Graph::from_metadata(&workspace_metadata());
    let v = check(&g);
    assert!(v.is_empty(), "crate rules broken:\n{}", v.join("\n"));
    assert!(g.members(Role::Common).len() >= 3);
    assert!(!g.members(Role::Test).is_empty());
}

#[test]
fn data_plane_never_reaches_async_runtimes_or_control_plane() {
    let g = Graph::from_metadata(&workspace_metadata());
    let dp = g.members(Role::Dp);
    let names: Vec<&str> = dp.iter().map(|id| g.name(id)).collect();
    assert!(
        dp.len() >= MIN_DP_CRATES,
        "found only {names:?} under crates/dp/"
    );
    assert!(names.contains(&"strahl-dataplane"), "{names:?}");
    let mut all = Vec::new();
    for id in &dp {
        all.extend(g.walk(id, true, &|d| {
            FORBIDDEN_IN_DP.contains(&g.name(d)) || g.role(d) == Some(Role::Cp)
        }));
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
    let cp = g.members(Role::Cp);
    let names: Vec<&str> = cp.iter().map(|id| g.name(id)).collect();
    assert!(
        cp.len() >= MIN_CP_CRATES,
        "found only {names:?} under crates/cp/"
    );
    assert!(names.contains(&"strahl-control"), "{names:?}");
    let mut all = Vec::new();
    for id in &cp {
        all.extend(g.walk(id, true, &|d| g.role(d) == Some(Role::Dp)));
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
            {"id": "dp", "name": "strahl-x", "manifest_path": "/w/crates/dp/x/Cargo.toml",
             "metadata": {"strahl": {"role": "dp"}}},
            {"id": "h", "name": "helper", "manifest_path": "/r/helper/Cargo.toml"},
            {"id": "t", "name": "tokio", "manifest_path": "/r/tokio/Cargo.toml"},
            {"id": "ok", "name": "strahl-y", "manifest_path": "/w/crates/dp/y/Cargo.toml",
             "metadata": {"strahl": {"role": "dp"}}},
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
    let dp_forbidden =
        |id: &str| FORBIDDEN_IN_DP.contains(&g.name(id)) || g.role(id) == Some(Role::Cp);
    let is_dp = |id: &str| g.role(id) == Some(Role::Dp);
    assert_eq!(g.members(Role::Dp).len(), 2);
    assert_eq!(
        g.walk("dp", true, &dp_forbidden),
        vec!["strahl-x → helper → tokio".to_owned()]
    );
    assert!(
        g.walk("ok", true, &dp_forbidden).is_empty(),
        "dev-only edge of a dependency is not linked"
    );
    // A cp crate with a dev-dependency on a dp crate is still a layering violation.
    assert_eq!(
        g.walk("c", true, &is_dp),
        vec!["strahl-control → strahl-y".to_owned()]
    );
}

/// A fake workspace that breaks every rule once: `check` must name each break, and only those.
#[test]
fn each_rule_can_fail() {
    let pkg = |id: &str, role: Option<&str>| {
        let mut p = serde_json::json!({"id": id, "name": format!("strahl-{id}"),
            "manifest_path": format!("/w/{id}/Cargo.toml")});
        if let Some(r) = role {
            p["metadata"] = serde_json::json!({"strahl": {"role": r}});
        }
        p
    };
    let normal = serde_json::json!([{"kind": null}]);
    let dev = serde_json::json!([{"kind": "dev"}]);
    let node = |id: &str, deps: &[(&str, &serde_json::Value)]| {
        let deps: Vec<_> = deps
            .iter()
            .map(|(d, k)| serde_json::json!({"pkg": d, "dep_kinds": k}))
            .collect();
        serde_json::json!({"id": id, "deps": deps})
    };
    let members = [
        ("d", Some("dp")),
        ("d2", Some("dp")),
        ("d3", Some("dp")),
        ("d4", Some("dp")),
        ("c1", Some("cp")),
        ("s", Some("cp")),
        ("s2", Some("cp")),
        ("m", Some("common")),
        ("testkit", Some("test")),
        ("suite", Some("test")),
        ("b", Some("bench")),
        ("cl", Some("client")),
        ("u", None),
    ];
    let mut packages: Vec<_> = members.iter().map(|(id, r)| pkg(id, *r)).collect();
    packages.push(serde_json::json!({"id": "tok", "name": "tokio", "manifest_path": "/r/tokio"}));
    let meta = serde_json::json!({
        "packages": packages,
        "workspace_members": members.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        "resolve": {"nodes": [
            node("d", &[("tok", &normal)]),
            node("d2", &[("c1", &normal)]),
            node("c1", &[("d3", &dev)]),
            node("d3", &[]),
            node("d4", &[("cl", &normal)]),
            node("m", &[("c1", &normal)]),
            // A helper as a dev-dependency is fine; as a normal one it ships.
            node("s", &[("testkit", &normal), ("b", &normal)]),
            node("s2", &[("testkit", &dev), ("suite", &dev)]),
            node("testkit", &[]),
            node("suite", &[("testkit", &normal)]),
            node("b", &[]),
            // The client may use dp crates (the reassembler).
            node("cl", &[("d3", &normal)]),
            node("u", &[]),
            node("tok", &[])
        ]}
    });
    let g = Graph::from_metadata(&meta);
    let mut got: Vec<String> = check(&g)
        .into_iter()
        .filter(|l| !l.starts_with("role: ROLES names"))
        .collect();
    got.sort();
    let mut want = vec![
        "appliance crate depends on the client: strahl-d4 → strahl-cl",
        "bench or a test suite is not a leaf: strahl-s → strahl-b",
        "bench or a test suite is not a leaf: strahl-s2 → strahl-suite",
        "common depends on dp or cp: strahl-m → strahl-c1",
        "cp depends on dp: strahl-c1 → strahl-d3",
        "dp reaches an async runtime or a cp crate: strahl-d → tokio",
        "dp reaches an async runtime or a cp crate: strahl-d2 → strahl-c1",
        "role: workspace member strahl-u has no role (add it to ROLES or declare \
         [package.metadata.strahl] role)",
        "shipped crate depends on a test or bench crate (dev-dependencies only): strahl-s → \
         strahl-b",
        "shipped crate depends on a test or bench crate (dev-dependencies only): strahl-s → \
         strahl-testkit",
    ];
    want.sort();
    assert_eq!(got, want);
    // ROLES is checked against the workspace too (none of its names are in this fake one).
    assert!(
        check(&g)
            .iter()
            .any(|l| l == "role: ROLES names strahl-dataplane, which is not a workspace member")
    );
}
