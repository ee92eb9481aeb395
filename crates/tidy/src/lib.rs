//! Empty: this crate only holds the project-wide checks in `tests/`.
