//! The fuzz targets' shared code: [`checks`] holds what each target does with its input.

pub mod checks;
