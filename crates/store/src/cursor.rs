//! Where a list stopped: one cursor type for every list the API pages through.
//!
//! A cursor is the sort key of the last item a page returned, and the next page starts strictly after it. Lists
//! are ordered four ways, so a cursor is one of four kinds; each list says which kind it takes, and a token of
//! another kind (or one this API did not issue) is refused by name, never read as the start. The text forms are
//! the ones clients already hold (a subscriber keeps its event-feed token across upgrades), so they are stable.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The sort key of a list's last item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// Lists ordered by a time and an id (clusters, topics, operations): `<microseconds>.<uuid>`.
    Keyed { at: DateTime<Utc>, id: Uuid },
    /// Lists ordered by a position (the audit log): `<position>`.
    Position(i64),
    /// The event feed, in commit order (transaction id, then position): `<xid>:<position>`.
    Commit { xid: u64, position: i64 },
    /// Lists ordered by a Kafka name (a cluster's topics): the name itself.
    Name(String),
}

/// Which kind of cursor a list takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorKind {
    Keyed,
    Position,
    Commit,
    Name,
}

/// A page token that is not a cursor of the list's kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("page_token is not a token this API issued for this list")]
pub struct InvalidCursor;

impl Cursor {
    /// The start of a list in commit order.
    pub const COMMIT_START: Cursor = Cursor::Commit { xid: 0, position: 0 };

    pub fn kind(&self) -> CursorKind {
        match self {
            Cursor::Keyed { .. } => CursorKind::Keyed,
            Cursor::Position(_) => CursorKind::Position,
            Cursor::Commit { .. } => CursorKind::Commit,
            Cursor::Name(_) => CursorKind::Name,
        }
    }

    /// The token a client passes back as `page_token`.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Keyed { at, id } => format!("{}.{id}", at.timestamp_micros()),
            Cursor::Position(p) => p.to_string(),
            Cursor::Commit { xid, position } => format!("{xid}:{position}"),
            Cursor::Name(name) => name.clone(),
        }
    }

    /// Reads a token as a cursor of `kind`.
    pub fn decode(token: &str, kind: CursorKind) -> Result<Cursor, InvalidCursor> {
        let cursor = match kind {
            CursorKind::Keyed => {
                let (micros, id) = token.split_once('.').ok_or(InvalidCursor)?;
                let at =
                    DateTime::from_timestamp_micros(micros.parse().map_err(|_| InvalidCursor)?).ok_or(InvalidCursor)?;
                Cursor::Keyed { at, id: id.parse().map_err(|_| InvalidCursor)? }
            }
            CursorKind::Position => Cursor::Position(token.parse().map_err(|_| InvalidCursor)?),
            CursorKind::Commit => {
                let (xid, position) = token.split_once(':').ok_or(InvalidCursor)?;
                Cursor::Commit {
                    xid: xid.parse().map_err(|_| InvalidCursor)?,
                    position: position.parse().map_err(|_| InvalidCursor)?,
                }
            }
            CursorKind::Name => {
                let kafka_name = polaris_domain::topic::TopicName::parse(token).is_ok() || matches!(token, "." | "..");
                if !kafka_name {
                    return Err(InvalidCursor);
                }
                Cursor::Name(token.to_owned())
            }
        };
        match cursor {
            Cursor::Position(p) | Cursor::Commit { position: p, .. } if p < 0 => Err(InvalidCursor),
            c => Ok(c),
        }
    }

    /// `(xid, position)` of a commit cursor.
    pub fn commit(&self) -> Option<(u64, i64)> {
        match *self {
            Cursor::Commit { xid, position } => Some((xid, position)),
            _ => None,
        }
    }

    /// `(at, id)` of a keyed cursor.
    pub fn keyed(&self) -> Option<(DateTime<Utc>, Uuid)> {
        match *self {
            Cursor::Keyed { at, id } => Some((at, id)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_keeps_its_text_form() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let id = Uuid::from_u128(42);
        let cursors = [
            (Cursor::Keyed { at, id }, format!("1764000000123456.{id}")),
            (Cursor::Position(17), "17".to_owned()),
            (Cursor::Commit { xid: 901, position: 33 }, "901:33".to_owned()),
            (Cursor::Name("orders.v1".into()), "orders.v1".to_owned()),
        ];
        for (cursor, text) in cursors {
            assert_eq!(cursor.encode(), text);
            assert_eq!(Cursor::decode(&text, cursor.kind()), Ok(cursor.clone()));
        }
    }

    #[test]
    fn garbage_and_other_kinds_are_refused() {
        let keyed = Cursor::Keyed { at: Utc::now(), id: Uuid::nil() }.encode();
        for (token, kind) in [
            ("", CursorKind::Keyed),
            ("x.y", CursorKind::Keyed),
            ("17", CursorKind::Keyed),
            ("901:33", CursorKind::Keyed),
            ("-1", CursorKind::Position),
            ("abc", CursorKind::Position),
            (keyed.as_str(), CursorKind::Position),
            ("901", CursorKind::Commit),
            ("1:-2", CursorKind::Commit),
            ("-1:2", CursorKind::Commit),
            (keyed.as_str(), CursorKind::Commit),
            ("", CursorKind::Name),
            ("no spaces", CursorKind::Name),
        ] {
            assert_eq!(Cursor::decode(token, kind), Err(InvalidCursor), "{token:?} as {kind:?}");
        }
    }
}
