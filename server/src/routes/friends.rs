//! Friends (filled in by the Friends work).

use actix_web::web;

/// Routes of this module under `/api/v1`.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
