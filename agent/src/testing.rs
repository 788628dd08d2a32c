//! Helpers for the unit tests' fixture trees.

use std::path::Path;

/// Writes `body` to `root/rel`, creating the directories on the way.
pub fn write(root: &Path, rel: &str, body: &(impl AsRef<[u8]> + ?Sized)) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("a relative path with a parent"))
        .expect("create the fixture's directories");
    std::fs::write(&p, body.as_ref()).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}
