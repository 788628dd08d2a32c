//! Profiles: format, catalogue, includes and conditions.
