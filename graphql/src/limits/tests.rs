//! The limits of [`super::check`] on hostile and ordinary documents.

use super::*;

const LIMITS: Limits = Limits {
    max_depth: 16,
    max_complexity: 500,
};

fn parse(query: &str) -> ExecutableDocument {
    async_graphql::parser::parse_query(query).expect("parses")
}

fn refusal(query: &str) -> Option<String> {
    check(&parse(query), LIMITS).err().map(|error| {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code").cloned());
        assert_eq!(code, Some(async_graphql::Value::from("BAD_USER_INPUT")));
        error.message
    })
}

/// `levels` fragments, each spreading the one before twice, under
/// `leaf`: 2^levels copies of `leaf` once expanded.
fn bomb(levels: usize, leaf: &str) -> String {
    let mut query = format!("query {{ ...F{levels} }} fragment F0 on Query {{ {leaf} }}");
    for i in 1..=levels {
        query.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i - 1,
            i - 1
        ));
    }
    query
}

#[test]
fn fragment_bombs_are_refused_in_one_visit_per_selection() {
    for leaf in ["platform { currency }", "__typename"] {
        for levels in [12, 24, 40, 63, 200] {
            let document = parse(&bomb(levels, leaf));
            let mut walk = Walk::new(&document);
            let refused = walk.check(LIMITS).expect_err("a bomb is refused");
            // The operation's spread, two spreads per fragment, the leaf.
            let written = 1 + 2 * levels as u64 + if leaf == "__typename" { 1 } else { 2 };
            // Deeper than 32 levels, the walk stops at the 33rd.
            assert!(
                walk.visited <= written,
                "{leaf} x 2^{levels}: {}",
                walk.visited
            );
            assert!(
                ["too complex", "too large", "recursion depth"]
                    .iter()
                    .any(|why| refused.message.contains(why)),
                "{leaf} x 2^{levels}: {}",
                refused.message
            );
        }
    }
    // Small enough bombs are ordinary documents.
    assert_eq!(refusal(&bomb(5, "platform { currency }")), None);
    assert_eq!(
        refusal(&bomb(9, "platform { currency }")).as_deref(),
        Some("Query is too complex."),
        "2^9 platform fields and as many currencies"
    );
}

#[test]
fn depth_and_complexity_are_counted_as_async_graphql_counts_them() {
    let nested = |levels: usize| {
        format!(
            "{{ __schema {{ queryType {{ fields {{ type {{ {}name{} }} }} }} }} }}",
            "ofType { ".repeat(levels),
            " }".repeat(levels)
        )
    };
    // __schema queryType fields type: 4, each ofType 1, name 1.
    assert_eq!(refusal(&nested(11)), None);
    assert_eq!(
        refusal(&nested(12)).as_deref(),
        Some("Query is nested too deep.")
    );
    // Through a fragment, the same.
    let through = format!(
        "{{ __schema {{ ...S }} }} fragment S on __Schema {{ queryType {{ fields {{ type {{ {}name{} }} }} }} }}",
        "ofType { ".repeat(12),
        " }".repeat(12)
    );
    assert_eq!(
        refusal(&through).as_deref(),
        Some("Query is nested too deep.")
    );
    // __typename counts for neither.
    let typenames: String = (0..600).map(|_| "__typename ").collect();
    assert_eq!(refusal(&format!("{{ {typenames} }}")), None);
    let fields: String = (0..501).map(|_| "platform { currency } ").collect();
    assert_eq!(
        refusal(&format!("{{ {fields} }}")).as_deref(),
        Some("Query is too complex.")
    );
}

#[test]
fn aliases_are_counted_once_per_spread() {
    let document = "query { a: platform { c: currency } ... on Query { b: platform { currency } } ...F ...G } \
         fragment F on Query { d: platform { currency } } fragment G on Query { ...F }";
    let document = parse(document);
    let (_, operation) = document.operations.iter().next().expect("an operation");
    let size = Walk::new(&document)
        .set(&operation.node.selection_set.node, 0)
        .expect("within the limits");
    // a, c, b, and d through F and again through G.
    assert_eq!(size.aliases, 5);
    assert!(check(&document, LIMITS).is_ok());
    let aliases: String = (0..16)
        .map(|i| format!("a{i}: platform {{ currency }} "))
        .collect();
    let twice = format!("{{ ...F ... on Query {{ ...F }} }} fragment F on Query {{ {aliases} }}");
    assert_eq!(
        refusal(&twice).as_deref(),
        Some("Query has too many aliases (limit 30).")
    );
}

#[test]
fn cycles_and_long_chains_are_refused_without_deep_recursion() {
    assert_eq!(
        refusal("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }").as_deref(),
        Some("Cannot spread fragment \"A\" within itself.")
    );
    // A chain of 10,000 fragments nobody spreads: async-graphql's
    // validation would follow it 10,000 calls deep.
    let mut chain = String::from("{ platform { currency } }");
    for i in 0..10_000 {
        chain.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
    }
    chain.push_str(" fragment F10000 on Query { __typename }");
    assert_eq!(
        refusal(&chain).as_deref(),
        Some("The recursion depth of the query cannot be greater than `32`")
    );
    // An unknown fragment is validation's to report.
    assert_eq!(refusal("{ ...Nowhere }"), None);
}

#[test]
fn large_argument_values_count_once_per_expansion() {
    let list: String = (0..1_000).map(|i| format!("\"{i}\",")).collect();
    let once = format!(
        "{{ ...F }} fragment F on Query {{ platform {{ currency }} a: user(id: \"x\", list: [{list}]) {{ id }} }}"
    );
    assert_eq!(refusal(&once), None);
    let spreads: String = (0..10).map(|_| "... on Query { ...F } ").collect();
    let many = format!(
        "{{ {spreads} }} fragment F on Query {{ user(id: \"x\", list: [{list}]) {{ id }} }}"
    );
    assert!(refusal(&many).is_some_and(|m| m.contains("too large")));
}
