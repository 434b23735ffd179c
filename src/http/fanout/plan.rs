//! Which execution a subscription gets, from what its operation selects:
//! only what the schema declares about its fields' messages
//! ([`SNAPSHOT_SUBSCRIPTIONS`], [`LOG_SUBSCRIPTIONS`]) decides it. Anything
//! unusual (fragments at the root, no such operation, a cursor that is not
//! an integer) runs alone, which is always correct.

use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType,
    Selection, SelectionSet,
};
use async_graphql::{Name, Positioned};
use async_graphql_value::{ConstValue, Value};
use giftdrop_graphql::live::{LOG_SUBSCRIPTIONS, LogSubscription, SNAPSHOT_SUBSCRIPTIONS};
use giftdrop_graphql::operation;

/// How a subscription is served.
pub(super) enum Plan {
    /// Its own execution.
    Alone,
    /// A shared execution of snapshot fields.
    Snapshot,
    /// A shared live execution of one event-log field.
    Log(Box<LogShape>),
}

/// An event-log operation, as the transport runs it: at any cursor, its
/// items' positions read from each response. What a request is made of,
/// without its per-request data.
pub(super) struct LogShape {
    query: String,
    operation_name: Option<String>,
    variables: async_graphql::Variables,
    document: ExecutableDocument,
    /// The operation's key among several, `None` when it is the only one.
    operation: Option<Name>,
    parts: Parts,
}

/// What the log field of an operation is made of.
struct Parts {
    /// Where the cursor is set.
    cursor: Cursor,
    /// The cursor the operation asks for.
    start: i32,
    /// The response keys of the log field and of its items' position.
    root: Name,
    position: Name,
}

/// Where an execution's cursor goes.
enum Cursor {
    /// The argument is this variable (used nowhere else): its value.
    Variable(Name),
    /// The argument itself (a literal, or absent): replaced.
    Argument(&'static str),
}

/// The plan for `request`, whose query is parsed already.
pub(super) fn plan(request: &mut async_graphql::Request) -> Plan {
    let operation_name = request.operation_name.clone();
    // Aside while the parse is borrowed.
    let variables = std::mem::take(&mut request.variables);
    let found = request.parsed_query().ok().and_then(|document| {
        classify(document, operation_name.as_deref(), &variables)
            .map(|kind| (kind, document.clone()))
    });
    request.variables = variables;
    match found {
        None => Plan::Alone,
        Some((Kind::Snapshot, _)) => Plan::Snapshot,
        Some((Kind::Log(operation, parts), document)) => Plan::Log(Box::new(LogShape {
            query: request.query.clone(),
            operation_name,
            variables: request.variables.clone(),
            document,
            operation,
            parts,
        })),
    }
}

/// A shared subscription, as found in its document.
enum Kind {
    Snapshot,
    /// A log: the operation's key among several, and its log field.
    Log(Option<Name>, Parts),
}

/// What the operation of `document` named `operation_name` is; `None`
/// when it runs alone.
fn classify(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &async_graphql::Variables,
) -> Option<Kind> {
    let operation = operation::selected(document, operation_name)?;
    if operation.node.ty != OperationType::Subscription {
        return None;
    }
    let fields = root_fields(&operation.node.selection_set.node)?;
    if !fields.is_empty()
        && fields
            .iter()
            .all(|field| SNAPSHOT_SUBSCRIPTIONS.contains(&field.name.node.as_str()))
    {
        return Some(Kind::Snapshot);
    }
    let [field] = fields.as_slice() else {
        return None;
    };
    let log = LOG_SUBSCRIPTIONS
        .iter()
        .find(|log| log.field == field.name.node.as_str())?;
    let key = match &document.operations {
        DocumentOperations::Single(_) => None,
        DocumentOperations::Multiple(operations) => operations
            .iter()
            .find(|(_, candidate)| std::ptr::eq(*candidate, operation))
            .map(|(name, _)| name.clone()),
    };
    let parts = Parts::of(document, &operation.node, field, log, variables)?;
    Some(Kind::Log(key, parts))
}

/// The fields selected at the root; `None` when a fragment is.
fn root_fields(selection_set: &SelectionSet) -> Option<Vec<&Field>> {
    selection_set
        .items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => Some(&field.node),
            Selection::FragmentSpread(_) | Selection::InlineFragment(_) => None,
        })
        .collect()
}

impl Parts {
    /// Where `field` (the log `log`, the only root field of `operation`)
    /// takes its cursor, the cursor asked for, and the response keys of
    /// the field and of its position; `None` if it cannot be shared.
    fn of(
        document: &ExecutableDocument,
        operation: &OperationDefinition,
        field: &Field,
        log: &LogSubscription,
        variables: &async_graphql::Variables,
    ) -> Option<Self> {
        // A directive could leave the field or its position out.
        if !field.directives.is_empty() {
            return None;
        }
        let position =
            field
                .selection_set
                .node
                .items
                .iter()
                .find_map(|selection| match &selection.node {
                    Selection::Field(item)
                        if item.node.name.node == log.position
                            && item.node.directives.is_empty()
                            && item.node.arguments.is_empty() =>
                    {
                        Some(item.node.response_key().node.clone())
                    }
                    _ => None,
                })?;
        let (cursor, value) = match field.get_argument(log.cursor).map(|value| &value.node) {
            Some(Value::Variable(name)) => {
                // Set for every execution: it must mean nothing else.
                if uses(document, operation, name) != 1 {
                    return None;
                }
                let value = variables.get(name).cloned().or_else(|| {
                    operation
                        .variable_definitions
                        .iter()
                        .find(|definition| definition.node.name.node == *name)
                        .and_then(|definition| definition.node.default_value.clone())
                        .map(|default| default.node)
                });
                (Cursor::Variable(name.clone()), value)
            }
            Some(value) => (Cursor::Argument(log.cursor), value.clone().into_const()),
            None => (Cursor::Argument(log.cursor), None),
        };
        Some(Self {
            cursor,
            start: start(value.unwrap_or(ConstValue::Null))?,
            root: field.response_key().node.clone(),
            position,
        })
    }
}

impl LogShape {
    /// The cursor the operation asks for.
    pub(super) fn start(&self) -> i32 {
        self.parts.start
    }

    /// The operation with its cursor set to `after`.
    pub(super) fn request(&self, after: i32) -> async_graphql::Request {
        let mut request =
            async_graphql::Request::new(self.query.clone()).variables(self.variables.clone());
        request.operation_name.clone_from(&self.operation_name);
        let mut document = self.document.clone();
        match &self.parts.cursor {
            Cursor::Variable(name) => {
                request
                    .variables
                    .insert(name.clone(), ConstValue::Number(after.into()));
            }
            Cursor::Argument(argument) => {
                if let Some(field) = self.field_mut(&mut document) {
                    let value = Positioned::new(Value::Number(after.into()), field.pos);
                    let field = &mut field.node;
                    match field
                        .arguments
                        .iter_mut()
                        .find(|(name, _)| name.node == *argument)
                    {
                        Some((_, old)) => *old = value,
                        None => field
                            .arguments
                            .push((Positioned::new(Name::new(argument), value.pos), value)),
                    }
                }
            }
        }
        request.set_parsed_query(document);
        request
    }

    /// The log field in `document` (a copy of the operation's): the
    /// operation's only selection.
    fn field_mut<'a>(
        &self,
        document: &'a mut ExecutableDocument,
    ) -> Option<&'a mut Positioned<Field>> {
        let operation = match (&mut document.operations, &self.operation) {
            (DocumentOperations::Single(operation), None) => operation,
            (DocumentOperations::Multiple(operations), Some(name)) => operations.get_mut(name)?,
            _ => return None,
        };
        match &mut operation.node.selection_set.node.items.first_mut()?.node {
            Selection::Field(field) => Some(field),
            Selection::FragmentSpread(_) | Selection::InlineFragment(_) => None,
        }
    }

    /// The position of the item `response` carries; `None` for a response
    /// without one (a failure).
    pub(super) fn position(&self, response: &async_graphql::Response) -> Option<i32> {
        let ConstValue::Object(data) = &response.data else {
            return None;
        };
        let ConstValue::Object(item) = data.get(&self.parts.root)? else {
            return None;
        };
        match item.get(&self.parts.position)? {
            ConstValue::Number(number) => i32::try_from(number.as_i64()?).ok(),
            _ => None,
        }
    }
}

/// The position a cursor value asks items after: an omitted or null
/// cursor is the start (0), and so is a negative one; `None` for anything
/// but an integer (the execution reports it).
fn start(value: ConstValue) -> Option<i32> {
    match value {
        ConstValue::Null => Some(0),
        ConstValue::Number(number) => {
            let cursor = number.as_i64()?.max(0);
            i32::try_from(cursor).ok()
        }
        _ => None,
    }
}

/// How many times the variable `name` is used in `operation` and the
/// document's fragments (over-counting a fragment this operation does not
/// spread only makes the caller more careful).
fn uses(document: &ExecutableDocument, operation: &OperationDefinition, name: &Name) -> usize {
    let fragments: usize = document
        .fragments
        .values()
        .map(|fragment| {
            in_directives(&fragment.node.directives, name)
                + in_selection_set(&fragment.node.selection_set.node, name)
        })
        .sum();
    fragments
        + in_directives(&operation.directives, name)
        + in_selection_set(&operation.selection_set.node, name)
}

fn in_selection_set(selection_set: &SelectionSet, name: &Name) -> usize {
    selection_set
        .items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                field
                    .arguments
                    .iter()
                    .map(|(_, value)| in_value(&value.node, name))
                    .sum::<usize>()
                    + in_directives(&field.directives, name)
                    + in_selection_set(&field.selection_set.node, name)
            }
            Selection::FragmentSpread(spread) => in_directives(&spread.node.directives, name),
            Selection::InlineFragment(inline) => {
                in_directives(&inline.node.directives, name)
                    + in_selection_set(&inline.node.selection_set.node, name)
            }
        })
        .sum()
}

fn in_directives(directives: &[Positioned<Directive>], name: &Name) -> usize {
    directives
        .iter()
        .flat_map(|directive| &directive.node.arguments)
        .map(|(_, value)| in_value(&value.node, name))
        .sum()
}

fn in_value(value: &Value, name: &Name) -> usize {
    match value {
        Value::Variable(variable) => usize::from(variable == name),
        Value::List(items) => items.iter().map(|item| in_value(item, name)).sum(),
        Value::Object(fields) => fields.values().map(|item| in_value(item, name)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
