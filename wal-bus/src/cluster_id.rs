//! The file log's identity: a random id written once, durably, when the
//! log directory is first opened (`CLUSTER_ID`), so a replica file can tell
//! which log it belongs to.

use std::path::Path;

use crate::error::{Error, Result};

/// The file that names this log; made once, when the log is first opened.
const CLUSTER_ID_FILE: &str = "CLUSTER_ID";

/// Reads the log's identity, creating it (durably) on first open.
pub(crate) fn load_cluster_id(dir: &Path) -> Result<String> {
    let path = dir.join(CLUSTER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&path, e)),
    }
    let id = new_cluster_id();
    let tmp = dir.join(format!("{CLUSTER_ID_FILE}.tmp"));
    std::fs::write(&tmp, format!("{id}\n"))
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::io(&path, e))?;
    crate::wall::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok(id)
}

/// 128 random bits as hex: two hashers seeded by the OS-random `RandomState`.
fn new_cluster_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let part = |salt: u128| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(salt);
        h.finish()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:016x}{:016x}",
        part(now),
        part(now ^ u128::from(std::process::id()))
    )
}
