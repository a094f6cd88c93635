//! Discovery: golden outputs of the derivation over the fixtures in `fixtures/` (every rule
//! and skip reason of docs/discovery.md), and `canary discover` through the real binary.
//!
//! Each `fixtures/NAME.yaml` has its expected output in `fixtures/NAME.golden`: the checks as
//! `canary discover -o yaml` prints them, then the skips. A changed output fails the test;
//! `CANARY_UPDATE_GOLDEN=1 cargo test --test discovery` rewrites the files (review the diff).

mod cli;

use std::path::{Path, PathBuf};

use canary_operator::{
    api::SkipReason,
    discover,
    discovery::{DEFAULT_CLUSTER_DOMAIN, Settings},
};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/discovery/fixtures");
    let mut paths: Vec<PathBuf> = (std::fs::read_dir(dir).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
}

/// Settings from the fixture's header comments (`# assume-accepted: false`,
/// `# cluster-domain: x`); otherwise `canary discover`'s defaults.
fn settings(text: &str) -> Settings {
    let header = |key: &str| {
        (text.lines().take_while(|l| l.starts_with('#')))
            .find_map(|l| l.strip_prefix(&format!("# {key}: ")).map(str::to_string))
    };
    Settings {
        cluster_domain: header("cluster-domain").unwrap_or(DEFAULT_CLUSTER_DOMAIN.into()),
        assume_accepted: header("assume-accepted").is_none_or(|v| v == "true"),
    }
}

/// What the derivation makes of a fixture: the checks as YAML, then the skips.
fn render(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match discover::generate(&[path.to_path_buf()], &settings(&text)) {
        Ok(generated) => {
            let mut out = Vec::new();
            discover::write_yaml(&mut out, &generated).unwrap();
            out.extend_from_slice(b"# skips\n");
            discover::write_skips(&mut out, &generated).unwrap();
            String::from_utf8(out).unwrap()
        }
        Err(e) => format!("# error\n{e}\n"),
    }
}

#[test]
fn every_fixture_derives_its_golden_output() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 25, "{} fixtures", fixtures.len());
    let update = std::env::var_os("CANARY_UPDATE_GOLDEN").is_some();
    let mut changed = Vec::new();
    for fixture in &fixtures {
        let golden = fixture.with_extension("golden");
        let actual = render(fixture);
        if update {
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with CANARY_UPDATE_GOLDEN=1)",
                golden.display()
            )
        });
        if actual != expected {
            changed.push(format!(
                "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
                fixture.display()
            ));
        }
    }
    assert!(
        changed.is_empty(),
        "outputs changed:\n{}",
        changed.join("\n")
    );
}

/// The goldens show every skip reason there is, so none goes untested.
#[test]
fn the_goldens_show_every_skip_reason() {
    let all: String = (fixtures().iter())
        .map(|f| std::fs::read_to_string(f.with_extension("golden")).unwrap_or_default())
        .collect();
    let reasons = [
        SkipReason::NoHost,
        SkipReason::WildcardHost,
        SkipReason::RegexPath,
        SkipReason::NotAccepted,
        SkipReason::ConditionalMatch,
        SkipReason::GatewayNotFound,
        SkipReason::NotAllowed,
        SkipReason::UnsupportedProtocol,
        SkipReason::DialUnsupported,
        SkipReason::NoStatusAddress,
        SkipReason::NoTLSSecret,
        SkipReason::InvalidTemplate,
    ];
    let missing: Vec<&str> = (reasons.iter())
        .map(|r| r.as_str())
        .filter(|r| !all.contains(&format!("  {r}  ")))
        .collect();
    assert!(missing.is_empty(), "no golden shows {missing:?}");
}

/// Every generated check passes the HealthCheck CRD's schema and Canary's own validation.
#[test]
fn every_generated_check_is_a_valid_healthcheck() {
    let crd =
        serde_json::to_value(<canary_operator::api::HealthCheck as kube::CustomResourceExt>::crd())
            .unwrap();
    let mut count = 0;
    for fixture in fixtures() {
        let text = std::fs::read_to_string(&fixture).unwrap();
        let Ok(generated) = discover::generate(std::slice::from_ref(&fixture), &settings(&text))
        else {
            continue;
        };
        for check in discover::checks(&generated) {
            count += 1;
            let object = serde_json::to_value(check).unwrap();
            canary_test_apiserver::schema::validate_custom_resource(&crd, &object)
                .unwrap_or_else(|e| panic!("{}: {object}: {e:?}", fixture.display()));
            assert!(check.metadata.name.as_ref().unwrap().len() <= 63);
        }
    }
    assert!(count >= 40, "{count} checks");
}

/// The order of the source objects changes nothing: checks are ordered by name, skips sorted.
#[test]
fn the_output_does_not_depend_on_the_order_of_the_inputs() {
    use canary_operator::discovery::{derive, input};
    let mut compared = 0;
    for fixture in fixtures() {
        let text = std::fs::read_to_string(&fixture).unwrap();
        let settings = settings(&text);
        let read = input::read(std::slice::from_ref(&fixture)).unwrap();
        let mut reversed = read.inputs.clone();
        reversed.ingresses.reverse();
        reversed.ingress_classes.reverse();
        reversed.gateways.reverse();
        reversed.http_routes.reverse();
        reversed.grpc_routes.reverse();
        reversed.services.reverse();
        reversed.namespaces.reverse();
        for discovery in &read.discoveries {
            let forward = derive(discovery, &read.inputs, &settings).ok();
            let backward = derive(discovery, &reversed, &settings).ok();
            assert_eq!(forward, backward, "{}", fixture.display());
            compared += 1;
        }
    }
    assert!(compared >= 10, "{compared}");
}
