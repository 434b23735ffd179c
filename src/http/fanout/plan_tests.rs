//! Which subscriptions are shared, and how a log operation is run again.

use async_graphql::Name;
use async_graphql::parser::types::{DocumentOperations, Selection};
use async_graphql_value::{ConstValue, Value};

use super::{LogShape, Plan, plan};

fn request(
    query: &str,
    operation_name: Option<&str>,
    variables: serde_json::Value,
) -> async_graphql::Request {
    let mut request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables));
    request.operation_name = operation_name.map(str::to_owned);
    request
}

fn plan_of(query: &str, operation_name: Option<&str>) -> Plan {
    plan(&mut request(query, operation_name, serde_json::json!({})))
}

fn is_snapshot(query: &str, operation_name: Option<&str>) -> bool {
    matches!(plan_of(query, operation_name), Plan::Snapshot)
}

fn log(query: &str, variables: serde_json::Value) -> Option<LogShape> {
    match plan(&mut request(query, None, variables)) {
        Plan::Log(shape) => Some(*shape),
        Plan::Snapshot | Plan::Alone => None,
    }
}

#[test]
fn only_snapshot_fields_at_the_root_are_shared_as_snapshots() {
    assert!(is_snapshot("subscription { meUpdated { id } }", None));
    assert!(is_snapshot(
        "subscription A { meUpdated { id } } subscription B { x: meUpdated { roles } }",
        Some("B")
    ));
    assert!(!is_snapshot(
        "subscription A { meUpdated { id } } subscription B { meUpdated { id } }",
        None
    ));
    assert!(!is_snapshot("subscription { __typename }", None));
    assert!(!is_snapshot(
        "subscription { ... on Subscription { meUpdated { id } } }",
        None
    ));
    assert!(!is_snapshot("subscription {", None));
    assert!(!is_snapshot("query { meUpdated { id } }", None));
    assert!(is_snapshot("subscription Only { meUpdated { id } }", None));
    assert!(!is_snapshot(
        "subscription A { meUpdated { id } }",
        Some("B")
    ));
}

#[test]
fn a_shared_log_is_one_log_field_alone_that_selects_its_position() {
    let none = serde_json::json!({});
    assert!(
        log(
            r#"subscription { winnerAnnounced(eventId: "x") { sequence } }"#,
            none.clone()
        )
        .is_some()
    );
    assert!(log(
        r#"subscription W($e: ID!) { w: winnerAnnounced(eventId: $e, after: 3) { id s: sequence } }"#,
        serde_json::json!({ "e": "x" })
    )
    .is_some());
    for alone in [
        // No position to tell where each item is.
        r#"subscription { winnerAnnounced(eventId: "x") { id } }"#,
        // A position that may be left out.
        r#"subscription($s: Boolean!) { winnerAnnounced(eventId: "x") { sequence @include(if: $s) } }"#,
        r#"subscription { a: winnerAnnounced(eventId: "x") { sequence } b: winnerAnnounced(eventId: "y") { sequence } }"#,
        r#"subscription { winnerAnnounced(eventId: "x") { sequence } meUpdated { id } }"#,
        r#"subscription { ... on Subscription { winnerAnnounced(eventId: "x") { sequence } } }"#,
        r#"query { winnerAnnounced(eventId: "x") { sequence } }"#,
        // Not an integer: the execution reports it.
        r#"subscription { winnerAnnounced(eventId: "x", after: "3") { sequence } }"#,
    ] {
        assert!(log(alone, none.clone()).is_none(), "{alone}");
    }
}

#[test]
fn the_cursor_asked_for_is_read_from_the_argument_or_its_variable() {
    let start = |query: &str, variables: serde_json::Value| {
        log(query, variables).map(|shape| shape.start())
    };
    let none = serde_json::json!({});
    assert_eq!(
        start(
            r#"subscription { winnerAnnounced(eventId: "x") { sequence } }"#,
            none.clone()
        ),
        Some(0)
    );
    assert_eq!(
        start(
            r#"subscription { winnerAnnounced(eventId: "x", after: 7) { sequence } }"#,
            none.clone()
        ),
        Some(7)
    );
    assert_eq!(
        start(
            r#"subscription { winnerAnnounced(eventId: "x", after: null) { sequence } }"#,
            none.clone()
        ),
        Some(0)
    );
    assert_eq!(
        start(
            r#"subscription { winnerAnnounced(eventId: "x", after: -4) { sequence } }"#,
            none.clone()
        ),
        Some(0)
    );
    let variable =
        r#"subscription($a: Int) { winnerAnnounced(eventId: "x", after: $a) { sequence } }"#;
    assert_eq!(start(variable, serde_json::json!({ "a": 9 })), Some(9));
    assert_eq!(start(variable, none.clone()), Some(0));
    let default =
        r#"subscription($a: Int = 5) { winnerAnnounced(eventId: "x", after: $a) { sequence } }"#;
    assert_eq!(start(default, none), Some(5));
    // A cursor variable used elsewhere too is never changed.
    let twice = r#"subscription($a: Int) { winnerAnnounced(eventId: "x", after: $a) { sequence prize(n: $a) { id } } }"#;
    assert_eq!(start(twice, serde_json::json!({ "a": 1 })), None);
}

/// The cursor argument of the log field in the request `shape` makes.
fn cursor_of(request: &mut async_graphql::Request) -> Option<Value> {
    let document = request.parsed_query().expect("parsed");
    let operation = match &document.operations {
        DocumentOperations::Single(operation) => operation,
        DocumentOperations::Multiple(operations) => operations.values().next().expect("one"),
    };
    let Selection::Field(field) = &operation.node.selection_set.node.items[0].node else {
        panic!("a field");
    };
    field
        .node
        .get_argument("after")
        .map(|value| value.node.clone())
}

#[test]
fn an_execution_runs_the_operation_after_the_cursor_it_is_given() {
    let none = serde_json::json!({});
    for query in [
        r#"subscription { winnerAnnounced(eventId: "x") { sequence } }"#,
        r#"subscription W { winnerAnnounced(eventId: "x", after: 2) { sequence } }"#,
    ] {
        let shape = log(query, none.clone()).expect("a log");
        let mut request = shape.request(41);
        assert_eq!(
            cursor_of(&mut request),
            Some(Value::Number(41.into())),
            "{query}"
        );
        assert_eq!(request.query, query);
    }
    let variable = r#"subscription($a: Int, $e: ID!) { winnerAnnounced(eventId: $e, after: $a) { sequence } }"#;
    let shape = log(variable, serde_json::json!({ "a": 2, "e": "x" })).expect("a log");
    let mut request = shape.request(41);
    assert_eq!(
        cursor_of(&mut request),
        Some(Value::Variable(Name::new("a")))
    );
    assert_eq!(
        request.variables.get("a"),
        Some(&ConstValue::Number(41.into()))
    );
    assert_eq!(
        request.variables.get("e"),
        Some(&ConstValue::String("x".into()))
    );
}

#[test]
fn positions_are_read_under_the_response_keys_the_operation_chose() {
    let shape = log(
        r#"subscription { w: winnerAnnounced(eventId: "x") { id s: sequence } }"#,
        serde_json::json!({}),
    )
    .expect("a log");
    let response = |data: serde_json::Value| {
        async_graphql::Response::new(ConstValue::from_json(data).expect("a value"))
    };
    assert_eq!(
        shape.position(&response(
            serde_json::json!({ "w": { "id": "a", "s": 12 } })
        )),
        Some(12)
    );
    assert_eq!(
        shape.position(&response(serde_json::json!({ "w": { "sequence": 12 } }))),
        None
    );
    assert_eq!(shape.position(&response(serde_json::json!(null))), None);
}
