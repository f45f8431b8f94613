//! `tributary passwd NAME`: a `[[router.auth.users]]` entry with a
//! SCRAM-SHA-256 verifier of the password read from standard input.

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// User name clients log in as.
    name: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "empty password on standard input");
    let verifier = router::auth::Verifier::generate(password);
    println!(
        "[[router.auth.users]]\nname = {:?}\npassword = \"{verifier}\"",
        args.name
    );
    Ok(())
}
