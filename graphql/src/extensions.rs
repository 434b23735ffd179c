//! Schema extensions: the alias limit (async-graphql has none) and the
//! error policy that stamps `INTERNAL` errors with the correlation id.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Response, ServerError, ServerResult, Value, Variables};

use crate::auth::RequestData;

/// Refuses documents with more than `max` aliased fields before execution:
/// aliases let one small request multiply work that depth and complexity
/// limits count only once per field definition.
pub struct AliasLimit {
    /// Most aliases one document may contain.
    pub max: usize,
}

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension { max: self.max })
    }
}

struct AliasLimitExtension {
    max: usize,
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let in_operations: usize = document
            .operations
            .iter()
            .map(|(_, op)| count_aliases(&op.node.selection_set.node))
            .sum();
        let in_fragments: usize = document
            .fragments
            .values()
            .map(|f| count_aliases(&f.node.selection_set.node))
            .sum();
        if in_operations + in_fragments > self.max {
            return Err(ServerError::new(
                format!("Query has too many aliases (limit {}).", self.max),
                None,
            ));
        }
        Ok(document)
    }
}

/// Adds `correlationId` to every `INTERNAL` error of a response.
pub struct ErrorPolicy;

impl ExtensionFactory for ErrorPolicy {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorPolicy)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorPolicy {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let correlation = ctx
            .data_opt::<RequestData>()
            .map(|r| r.meta.correlation_id.clone());
        if let Some(correlation) = correlation {
            for error in &mut response.errors {
                stamp(error, &correlation);
            }
        }
        response
    }
}

fn stamp(error: &mut ServerError, correlation: &str) {
    let Some(extensions) = error.extensions.as_mut() else {
        return;
    };
    if extensions.get("code") == Some(&Value::from("INTERNAL")) {
        extensions.set("correlationId", correlation);
    }
}
