//! Paging for every list: the page size rule and the page token, read as the store's one cursor type. Each list
//! names the kind of cursor it takes; a token of another kind is refused as a validation error on `page_token`.

use polaris_store::{Cursor, CursorKind};

use crate::error::AppError;

pub const MAX_PAGE_SIZE: u32 = 100;
const DEFAULT_PAGE_SIZE: u32 = 50;

/// A requested page size, checked: 1 to 100, default 50.
pub fn page_size(requested: Option<u32>) -> Result<u32, AppError> {
    let page_size = requested.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(AppError::validation(
            format!("page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"),
            Some("page_size"),
        ));
    }
    Ok(page_size)
}

/// The cursor a list's `page_token` names, if any.
pub fn cursor(token: Option<&str>, kind: CursorKind) -> Result<Option<Cursor>, AppError> {
    token
        .map(|t| Cursor::decode(t, kind).map_err(|e| AppError::validation(e.to_string(), Some("page_token"))))
        .transpose()
}

/// The next page's token: the cursor of the last of `rows`, when a row beyond the page was fetched (`rows` holds
/// up to `page_size + 1`; the extra row is dropped).
pub fn next_token<R>(rows: &mut Vec<R>, page_size: u32, cursor_of: impl Fn(&R) -> Cursor) -> Option<String> {
    if rows.len() <= page_size as usize {
        return None;
    }
    rows.truncate(page_size as usize);
    rows.last().map(|r| cursor_of(r).encode())
}
