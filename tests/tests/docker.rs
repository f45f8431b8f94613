//! docker/compose.yml is a valid Compose file (there is no Docker engine
//! here to run it; `docker-compose config` parses and validates it).

use std::path::Path;
use std::process::Command;

#[test]
fn compose_file_validates() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("docker-compose")
        .args(["-f", "docker/compose.yml", "config", "-q"])
        .current_dir(&root)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dockerfile = std::fs::read_to_string(root.join("docker/Dockerfile"))?;
    assert!(dockerfile.contains("docker/node.toml") && root.join("docker/node.toml").exists());
    Ok(())
}
