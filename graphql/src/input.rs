//! The one check every string a request brings goes through before any
//! resolver sees it: no NUL character. Postgres text cannot hold one (the
//! statement fails, which a resolver could only report as `INTERNAL`), and
//! no field of the contract has a use for it. Other control characters are
//! refused where they matter, by the domain's validated types (an email
//! has none, a description may have line breaks).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use async_graphql::Name;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, Variables};
use async_graphql_value::{ConstValue, Value};

use crate::error::bad_user_input;

/// `Err` (`BAD_USER_INPUT`, with `field` the argument's input path, e.g.
/// `input.email`) when a string given to a field argument of `document`,
/// inline or through a variable of `variables`, contains a NUL. Each
/// definition and each variable is looked at once: linear in the request.
pub fn check_strings(
    document: &ExecutableDocument,
    variables: &Variables,
) -> Result<(), ServerError> {
    let mut defaults = HashMap::new();
    for (_, operation) in document.operations.iter() {
        for definition in &operation.node.variable_definitions {
            if let Some(default) = &definition.node.default_value {
                defaults
                    .entry(definition.node.name.node.as_str())
                    .or_insert(&default.node);
            }
        }
    }
    let mut walk = Walk {
        variables,
        defaults,
        seen: HashSet::new(),
        path: String::new(),
    };
    for (_, operation) in document.operations.iter() {
        walk.set(&operation.node.selection_set.node)?;
    }
    for fragment in document.fragments.values() {
        walk.set(&fragment.node.selection_set.node)?;
    }
    Ok(())
}

struct Walk<'a> {
    variables: &'a Variables,
    /// The operations' default values of their variables.
    defaults: HashMap<&'a str, &'a ConstValue>,
    /// Variables already looked at (a variable may be used many times).
    seen: HashSet<&'a str>,
    /// The input path of the value being looked at.
    path: String,
}

impl<'a> Walk<'a> {
    fn set(&mut self, set: &'a SelectionSet) -> Result<(), ServerError> {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    for (name, value) in &field.node.arguments {
                        self.path.clear();
                        self.path.push_str(&name.node);
                        self.value(&value.node)?;
                    }
                    self.set(&field.node.selection_set.node)?;
                }
                Selection::InlineFragment(fragment) => {
                    self.set(&fragment.node.selection_set.node)?;
                }
                // Fragments are looked at once, on their own.
                Selection::FragmentSpread(_) => {}
            }
        }
        Ok(())
    }

    /// Looks at the literal `value`, found at `self.path`.
    fn value(&mut self, value: &'a Value) -> Result<(), ServerError> {
        match value {
            Value::Variable(name) => match self.variable(name) {
                Some(value) if self.seen.insert(name.as_str()) => self.constant(value),
                _ => Ok(()),
            },
            Value::String(text) => self.text(text),
            Value::List(items) => self.list(items, Self::value),
            Value::Object(fields) => self.object(fields, Self::value),
            _ => Ok(()),
        }
    }

    /// Looks at a variable's `value`, found at `self.path`.
    fn constant(&mut self, value: &'a ConstValue) -> Result<(), ServerError> {
        match value {
            ConstValue::String(text) => self.text(text),
            ConstValue::List(items) => self.list(items, Self::constant),
            ConstValue::Object(fields) => self.object(fields, Self::constant),
            _ => Ok(()),
        }
    }

    fn text(&self, text: &str) -> Result<(), ServerError> {
        if text.contains('\0') {
            return Err(bad_user_input(
                "must not contain a NUL character",
                Some(&self.path),
            ));
        }
        Ok(())
    }

    fn list<T: 'a>(
        &mut self,
        items: &'a [T],
        look: fn(&mut Self, &'a T) -> Result<(), ServerError>,
    ) -> Result<(), ServerError> {
        let length = self.path.len();
        for (i, item) in items.iter().enumerate() {
            let _ = write!(self.path, "[{i}]");
            look(self, item)?;
            self.path.truncate(length);
        }
        Ok(())
    }

    fn object<T: 'a>(
        &mut self,
        fields: impl IntoIterator<Item = (&'a Name, &'a T)>,
        look: fn(&mut Self, &'a T) -> Result<(), ServerError>,
    ) -> Result<(), ServerError> {
        let length = self.path.len();
        for (name, item) in fields {
            self.path.push('.');
            self.path.push_str(name);
            look(self, item)?;
            self.path.truncate(length);
        }
        Ok(())
    }

    /// The value of the variable `name`: the request's, else its default.
    fn variable(&self, name: &str) -> Option<&'a ConstValue> {
        self.variables
            .get(name)
            .or_else(|| self.defaults.get(name).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `field` of the refusal, if `query` with `variables` is refused.
    fn refused_at(query: &str, variables: serde_json::Value) -> Option<String> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let variables = Variables::from_json(variables);
        check_strings(&document, &variables).err().map(|error| {
            let extensions = error.extensions.expect("extensions");
            assert_eq!(
                extensions.get("code"),
                Some(&async_graphql::Value::from("BAD_USER_INPUT"))
            );
            match extensions.get("field") {
                Some(async_graphql::Value::String(field)) => field.clone(),
                other => panic!("no field: {other:?}"),
            }
        })
    }

    #[test]
    fn a_nul_anywhere_in_an_argument_is_refused_with_its_path() {
        let login = "mutation($e: String!) { login(email: $e, password: \"p\") { token } }";
        assert_eq!(
            refused_at(login, serde_json::json!({ "e": "a@b.io" })),
            None
        );
        assert_eq!(
            refused_at(login, serde_json::json!({ "e": "a\u{0}@b.io" })).as_deref(),
            Some("email")
        );
        assert_eq!(
            refused_at(
                "mutation($i: CreateEventInput!) { createEvent(input: $i) { id } }",
                serde_json::json!({ "i": { "title": "ok", "prizes": [{ "name": "x" }, { "name": "y\u{0}" }] } })
            )
            .as_deref(),
            Some("input.prizes[1].name")
        );
        assert_eq!(
            refused_at(
                "{ ...F } fragment F on Query { search(q: { text: [\"a\", \"b\\u0000\"] }) }",
                serde_json::json!({})
            )
            .as_deref(),
            Some("q.text[1]")
        );
        assert_eq!(
            refused_at(
                "query($t: String = \"x\\u0000\") { a: f(t: $t) b: f(t: $t) }",
                serde_json::json!({})
            )
            .as_deref(),
            Some("t"),
            "a default value counts when the variable is not given"
        );
        // Unused variables reach nothing, and other strings pass.
        assert_eq!(
            refused_at(
                "{ f(t: \"line\\nbreak\") }",
                serde_json::json!({ "unused": "\u{0}" })
            ),
            None
        );
    }
}
