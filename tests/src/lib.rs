//! Helpers for the end-to-end suite: locate (and build once) the nodetune binary.
