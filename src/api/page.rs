//! The page shape every list route answers with.

use serde_json::{Value, json};

/// Renders a page with `item` for each element.
pub(super) fn page_json<T>(page: crate::model::Page<T>, item: impl Fn(&T) -> Value) -> Value {
    json!({
        "content": page.content.iter().map(item).collect::<Vec<_>>(),
        "totalElements": page.total_elements,
        "totalPages": page.total_pages,
        "size": page.size,
        "number": page.number,
    })
}
