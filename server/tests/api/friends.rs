//! Friends over HTTP.
