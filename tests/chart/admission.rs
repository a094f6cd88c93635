//! The ValidatingAdmissionPolicy that pins a spoke to its location's CheckReports
//! (`locations.pinReports`), its CEL evaluated with the `cel` crate the local API server uses
//! (which does not run admission policies itself) against requests it must allow and refuse.

use canary_test_apiserver::schema::cel::to_cel;
use canary_test_harness::chart;
use cel::{Context, Program, Value as CelValue};
use serde_json::{Value, json};

const SPOKE: &str = "system:serviceaccount:canary:canary-spoke-";

/// The rendered policy with pinning on.
async fn policy() -> Value {
    let objects = chart::render(&[
        "--set",
        "locations.enabled=true,locations.pinReports.enabled=true",
    ])
    .await;
    let policy = (objects.iter())
        .find(|o| o["kind"] == "ValidatingAdmissionPolicy")
        .expect("a ValidatingAdmissionPolicy")
        .clone();
    let binding = (objects.iter())
        .find(|o| o["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("its binding");
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    policy
}

fn eval(expression: &str, ctx: &Context) -> CelValue {
    let program = Program::compile(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
    (program.execute(ctx)).unwrap_or_else(|e| panic!("{expression}: {e}"))
}

/// `None` when the request is allowed, else the message of the first failed validation.
fn admit(policy: &Value, request: &Value, object: &Value, old: &Value) -> Option<String> {
    let mut ctx = Context::default();
    ctx.add_variable_from_value("request", to_cel(request));
    ctx.add_variable_from_value("object", to_cel(object));
    ctx.add_variable_from_value("oldObject", to_cel(old));
    let spec = &policy["spec"];
    for condition in spec["matchConditions"].as_array().unwrap() {
        if eval(condition["expression"].as_str().unwrap(), &ctx) != CelValue::Bool(true) {
            return None;
        }
    }
    let mut variables = std::collections::HashMap::new();
    for variable in spec["variables"].as_array().unwrap() {
        let value = eval(variable["expression"].as_str().unwrap(), &ctx);
        variables.insert(variable["name"].as_str().unwrap().to_string(), value);
    }
    ctx.add_variable_from_value("variables", variables);
    for rule in spec["validations"].as_array().unwrap() {
        if eval(rule["expression"].as_str().unwrap(), &ctx) == CelValue::Bool(true) {
            continue;
        }
        return Some(match rule["messageExpression"].as_str() {
            Some(message) => match eval(message, &ctx) {
                CelValue::String(s) => s.to_string(),
                other => panic!("message {other:?}"),
            },
            None => rule["message"].as_str().unwrap().to_string(),
        });
    }
    None
}

fn report(name: &str, check: &str, location: &str) -> Value {
    json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "CheckReport",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"check": check, "location": location, "heartbeatSeconds": 60},
    })
}

fn request(user: &str, operation: &str) -> Value {
    json!({"operation": operation, "userInfo": {"username": user, "groups": []}})
}

#[tokio::test]
async fn a_spoke_writes_only_its_own_locations_reports() {
    let policy = policy().await;
    let eu = format!("{SPOKE}eu-west");
    let mine = report("api.eu-west", "api", "eu-west");
    let theirs = report("api.us-east", "api", "us-east");
    let null = Value::Null;
    let allowed = [
        ("create its own", request(&eu, "CREATE"), &mine, &null),
        ("update its own", request(&eu, "UPDATE"), &mine, &mine),
        ("delete its own", request(&eu, "DELETE"), &null, &mine),
        // Not a spoke: the hub's operator, an admin: the policy does not apply.
        (
            "the hub operator",
            request("system:serviceaccount:canary:canary-operator", "DELETE"),
            &null,
            &theirs,
        ),
        (
            "an admin",
            request("kubernetes-admin", "CREATE"),
            &theirs,
            &null,
        ),
    ];
    for (what, request, object, old) in allowed {
        assert_eq!(admit(&policy, &request, object, old), None, "{what}");
    }
    let moved = report("api.eu-west", "api", "eu-west");
    let misnamed = report("other.eu-west", "api", "eu-west");
    let refused = [
        (
            "create another location's",
            request(&eu, "CREATE"),
            &theirs,
            &null,
            "own location",
        ),
        (
            "update another location's",
            request(&eu, "UPDATE"),
            &theirs,
            &theirs,
            "own location",
        ),
        (
            "delete another location's",
            request(&eu, "DELETE"),
            &null,
            &theirs,
            "own location",
        ),
        (
            "take over a report",
            request(&eu, "UPDATE"),
            &moved,
            &theirs,
            "never changes",
        ),
        (
            "misname its report",
            request(&eu, "CREATE"),
            &misnamed,
            &null,
            "is named",
        ),
        // A prefix of another location's account name is not that account.
        (
            "a shorter location name",
            request(&format!("{SPOKE}eu"), "CREATE"),
            &mine,
            &null,
            "own location",
        ),
    ];
    for (what, request, object, old, says) in refused {
        let message = admit(&policy, &request, object, old);
        let message = message.unwrap_or_else(|| panic!("{what}: allowed"));
        assert!(message.contains(says), "{what}: {message}");
    }
}

#[tokio::test]
async fn the_policy_is_off_unless_asked_for() {
    for values in [
        "locations.enabled=true",
        "locations.pinReports.enabled=true",
    ] {
        let objects = chart::render(&["--set", values]).await;
        let kinds: Vec<&Value> = objects.iter().map(|o| &o["kind"]).collect();
        assert!(
            !kinds.contains(&&json!("ValidatingAdmissionPolicy")),
            "{values}: {kinds:?}"
        );
    }
}
