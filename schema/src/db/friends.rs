//! Friend graph queries (filled in by the Friends work).
use super::{AnyConnection, DbError};
/// Creates the default category of a new user.
pub fn create_default_category(conn: &mut AnyConnection, user_id: i64, name: &str, now: i64) -> Result<i64, DbError> { let _ = (conn, user_id, name, now); Ok(0) }
