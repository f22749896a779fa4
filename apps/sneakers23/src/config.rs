//! Node configuration that is more than a plain value: the environment (development or
//! production), the signing secret, the admin credentials and the CartTracker's timing.
//!
//! The `serve` command's flags (the binary's `cli.rs`) are turned into a
//! [`crate::node::NodeConfig`] with the helpers here, so the rules are written once and tested
//! without a server:
//!
//! - [`resolve_secret_key_base`]: production requires `SECRET_KEY_BASE`; development generates
//!   one on first start and keeps it in a file so that sessions and cart tokens survive restarts.
//! - [`tracker_options`]: the tracker periods with Phoenix's defaults and the tracker's own
//!   validation, reported with the flag names an operator typed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use channels::token::MIN_SECRET_KEY_BASE_LEN;
use rand::RngCore;

/// Where the node runs; decides the defaults that must differ between a laptop and production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Env {
    /// Development: generated secret, admin/password, origin check off.
    #[default]
    Dev,
    /// Production: `SECRET_KEY_BASE`, `ADMIN_USER` and `ADMIN_PASSWORD` are required.
    Prod,
}

/// The HTTP Basic credentials of the admin dashboard (spec §14.1).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminCredentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl AdminCredentials {
    /// The development credentials of the book: `admin` / `password`.
    pub fn development() -> Self {
        Self {
            user: "admin".into(),
            password: "password".into(),
        }
    }
}

/// A configuration the node refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Production without a secret.
    #[error(
        "SECRET_KEY_BASE is required with --env prod: generate one with \
         `head -c 48 /dev/urandom | base64 -w0` and give the same value to every node"
    )]
    MissingSecret,
    /// A secret shorter than Phoenix accepts.
    #[error(
        "SECRET_KEY_BASE is {len} bytes long; at least {MIN_SECRET_KEY_BASE_LEN} are required \
         (64 random characters are recommended)"
    )]
    SecretTooShort {
        /// Its length.
        len: usize,
    },
    /// The development secret file could not be read or written.
    #[error(
        "could not {action} the development secret file {}: {cause}; set SECRET_KEY_BASE or \
         --secret-key-file to a writable path",
        path.display()
    )]
    SecretFile {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// I/O error.
        cause: std::io::Error,
    },
    /// Production with a secret that is long enough for Phoenix but guessable.
    #[error(
        "SECRET_KEY_BASE is too weak for production ({reason}): use at least \
         {MIN_PROD_SECRET_LEN} random characters, e.g. `head -c 48 /dev/urandom | base64 -w0`"
    )]
    WeakSecret {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Production with a guessable admin password.
    #[error(
        "ADMIN_PASSWORD is too weak for production ({reason}): use at least \
         {MIN_PROD_PASSWORD_LEN} characters that are not a common password, e.g. \
         `head -c 18 /dev/urandom | base64`"
    )]
    WeakAdminPassword {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Production without admin credentials.
    #[error("ADMIN_USER and ADMIN_PASSWORD are required with --env prod")]
    MissingAdminCredentials,
    /// Tracker periods that do not fit together.
    #[error(
        "invalid CartTracker timing (TRACKER_BROADCAST_PERIOD_MS={broadcast_ms}, \
         TRACKER_DOWN_PERIOD_MS={down}, TRACKER_PERMDOWN_PERIOD_MS={permdown_ms}): {cause}"
    )]
    Tracker {
        /// Broadcast period given.
        broadcast_ms: u64,
        /// Down period given, or `default`.
        down: String,
        /// Permdown period given.
        permdown_ms: u64,
        /// What the tracker objects to.
        cause: tracker::OptionsError,
    },
    /// A maximum cart size of zero.
    #[error("MAX_CART_ITEMS must be at least 1")]
    ZeroMaxCartItems,
    /// The CLI has no secret to derive the control token from.
    #[error(
        "no SECRET_KEY_BASE to authenticate to the node: set SECRET_KEY_BASE to the node's \
         secret, or SECRET_KEY_FILE to the node's development secret file (looked for {})",
        path.display()
    )]
    NoSecretForCli {
        /// The development secret file looked at.
        path: PathBuf,
    },
}

/// The secret to sign sessions and tokens with.
///
/// - `given` (`SECRET_KEY_BASE`) wins; it must be at least 20 bytes.
/// - Otherwise production refuses to start ([`ConfigError::MissingSecret`]).
/// - Otherwise (development) the secret stored in `file` is used, or a new one is generated
///   (48 random bytes, base64) and written there (mode 0600 where supported). Nodes started
///   together on a fresh checkout all end up with the first secret stored.
pub fn resolve_secret_key_base(
    given: Option<&str>,
    env: Env,
    file: &Path,
) -> Result<String, ConfigError> {
    if let Some(secret) = given.filter(|s| !s.is_empty()) {
        let secret = check_secret(secret.to_owned())?;
        if env == Env::Prod {
            check_production_secret(&secret)?;
        }
        return Ok(secret);
    }
    if env == Env::Prod {
        return Err(ConfigError::MissingSecret);
    }
    match std::fs::read_to_string(file) {
        Ok(stored) => return check_secret(stored.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(cause) => {
            return Err(ConfigError::SecretFile {
                action: "read",
                path: file.to_owned(),
                cause,
            });
        }
    }
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let generated = STANDARD.encode(bytes);
    let written = write_secret(file, &generated).map_err(|cause| ConfigError::SecretFile {
        action: "write",
        path: file.to_owned(),
        cause,
    })?;
    match written {
        Written::Ours => {
            tracing::info!(path = %file.display(), "generated a development SECRET_KEY_BASE");
            Ok(generated)
        }
        // Another node started at the same moment and stored its secret first: use it.
        Written::Theirs(stored) => check_secret(stored.trim().to_owned()),
    }
}

/// The secret the CLI authenticates with: `given` (`SECRET_KEY_BASE`), or the development
/// secret a node stored in `file`. Never generates one.
pub fn read_secret_key_base(given: Option<&str>, file: &Path) -> Result<String, ConfigError> {
    if let Some(secret) = given.filter(|s| !s.is_empty()) {
        return check_secret(secret.to_owned());
    }
    match std::fs::read_to_string(file) {
        Ok(stored) => check_secret(stored.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::NoSecretForCli {
            path: file.to_owned(),
        }),
        Err(cause) => Err(ConfigError::SecretFile {
            action: "read",
            path: file.to_owned(),
            cause,
        }),
    }
}

/// Shortest `SECRET_KEY_BASE` production accepts (`mix phx.gen.secret` makes 64).
pub const MIN_PROD_SECRET_LEN: usize = 32;
/// Shortest `ADMIN_PASSWORD` production accepts.
pub const MIN_PROD_PASSWORD_LEN: usize = 12;

/// Fewest distinct characters in a production secret or password: `aaaa…` is refused.
const MIN_DISTINCT: usize = 8;

/// Passwords refused in production whatever their length (compared case-insensitively, and
/// as prefixes of a longer password padded with digits).
const COMMON_PASSWORDS: [&str; 8] = [
    "password", "admin", "123456", "qwerty", "letmein", "welcome", "sneakers", "changeme",
];

fn distinct(text: &str) -> usize {
    text.bytes()
        .collect::<std::collections::BTreeSet<u8>>()
        .len()
}

fn check_production_secret(secret: &str) -> Result<(), ConfigError> {
    if secret.len() < MIN_PROD_SECRET_LEN {
        return Err(ConfigError::WeakSecret {
            reason: "too short",
        });
    }
    if distinct(secret) < MIN_DISTINCT * 2 {
        return Err(ConfigError::WeakSecret {
            reason: "too few distinct characters",
        });
    }
    Ok(())
}

/// Refuses a guessable admin password (production only).
pub fn check_production_password(user: &str, password: &str) -> Result<(), ConfigError> {
    let lower = password.to_ascii_lowercase();
    let reason = if password.len() < MIN_PROD_PASSWORD_LEN {
        Some("too short")
    } else if lower == user.to_ascii_lowercase() {
        Some("the same as the user name")
    } else if distinct(password) < MIN_DISTINCT {
        Some("too few distinct characters")
    } else if COMMON_PASSWORDS.iter().any(|common| {
        lower
            .strip_prefix(common)
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit() || b == b'!'))
    }) {
        Some("a common password")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::WeakAdminPassword { reason }),
        None => Ok(()),
    }
}

fn check_secret(secret: String) -> Result<String, ConfigError> {
    if secret.len() < MIN_SECRET_KEY_BASE_LEN {
        return Err(ConfigError::SecretTooShort { len: secret.len() });
    }
    Ok(secret)
}

/// Which secret ended up in the file.
enum Written {
    /// The one just generated.
    Ours,
    /// Another process's, stored first; its contents.
    Theirs(String),
}

/// Stores `secret` in `file` unless another process got there first. The secret is written to
/// a temporary file beside it and hard-linked into place, so `file` appears only complete and
/// only once: concurrent first runs all end up with the first secret linked, and a reader never
/// sees a partial file.
fn write_secret(file: &Path, secret: &str) -> std::io::Result<Written> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = file.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::rng().next_u64()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let linked = options.open(&temporary).and_then(|mut f| {
        std::io::Write::write_all(&mut f, secret.as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&temporary, file)
    });
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(Written::Ours),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(file).map(Written::Theirs)
        }
        Err(e) => Err(e),
    }
}

/// The admin credentials: both given, or development's `admin`/`password`; production
/// requires both.
pub fn admin_credentials(
    user: Option<&str>,
    password: Option<&str>,
    env: Env,
) -> Result<AdminCredentials, ConfigError> {
    match (user, password, env) {
        (Some(user), Some(password), Env::Prod) => {
            check_production_password(user, password)?;
            Ok(AdminCredentials {
                user: user.to_owned(),
                password: password.to_owned(),
            })
        }
        (Some(user), Some(password), Env::Dev) => Ok(AdminCredentials {
            user: user.to_owned(),
            password: password.to_owned(),
        }),
        (_, _, Env::Prod) => Err(ConfigError::MissingAdminCredentials),
        (user, password, Env::Dev) => {
            let dev = AdminCredentials::development();
            Ok(AdminCredentials {
                user: user.map_or(dev.user, str::to_owned),
                password: password.map_or(dev.password, str::to_owned),
            })
        }
    }
}

/// The CartTracker's tracker options: Phoenix's defaults, the periods given (milliseconds;
/// `down_ms = None` derives it from the broadcast period), `pool_size` shards.
pub fn tracker_options(
    broadcast_ms: u64,
    down_ms: Option<u64>,
    permdown_ms: u64,
    pool_size: usize,
) -> Result<tracker::Options, ConfigError> {
    let options = tracker::Options {
        broadcast_period: Duration::from_millis(broadcast_ms),
        down_period: down_ms.map(Duration::from_millis),
        permdown_period: Duration::from_millis(permdown_ms),
        pool_size,
        ..tracker::Options::default()
    };
    options.validate().map_err(|cause| ConfigError::Tracker {
        broadcast_ms,
        down: down_ms.map_or_else(|| "default".to_owned(), |d| d.to_string()),
        permdown_ms,
        cause,
    })?;
    Ok(options)
}

/// The number of CPUs, the CartTracker's pool size (spec §5).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_secret_wins_and_must_be_long_enough() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        let long = "0123456789abcdefghijklmnopqrstuvwxyz".repeat(2);
        assert_eq!(
            resolve_secret_key_base(Some(&long), Env::Prod, &file).ok(),
            Some(long)
        );
        assert!(matches!(
            resolve_secret_key_base(Some("short"), Env::Dev, &file),
            Err(ConfigError::SecretTooShort { len: 5 })
        ));
        assert!(!file.exists());
    }

    #[test]
    fn production_requires_a_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        assert!(matches!(
            resolve_secret_key_base(None, Env::Prod, &file),
            Err(ConfigError::MissingSecret)
        ));
    }

    #[test]
    fn development_generates_once_and_keeps_it() -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("data").join("secret_key_base");
        let first = resolve_secret_key_base(None, Env::Dev, &file)?;
        assert_eq!(first.len(), 64);
        assert_eq!(resolve_secret_key_base(None, Env::Dev, &file)?, first);
        Ok(())
    }

    /// Nodes started together on a fresh checkout all generate a secret at once: they must all
    /// end up with the one stored, none failing and none reading a half-written file.
    #[test]
    fn concurrent_first_runs_agree_on_one_secret() {
        const NODES: usize = 8;
        for round in 0..20 {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("data").join("secret_key_base");
            let start = std::sync::Barrier::new(NODES);
            let secrets: Vec<String> = std::thread::scope(|scope| {
                let nodes: Vec<_> = (0..NODES)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            resolve_secret_key_base(None, Env::Dev, &file)
                        })
                    })
                    .collect();
                nodes
                    .into_iter()
                    .map(|node| match node.join() {
                        Ok(Ok(secret)) => secret,
                        Ok(Err(error)) => panic!("round {round}: {error}"),
                        Err(_) => panic!("round {round}: a node panicked"),
                    })
                    .collect()
            });
            let stored = std::fs::read_to_string(&file).expect("the stored secret");
            assert_eq!(stored.len(), 64, "round {round}");
            assert!(
                secrets.iter().all(|s| *s == stored),
                "round {round}: {secrets:?}"
            );
            let left: Vec<_> = std::fs::read_dir(file.parent().expect("dir"))
                .expect("list")
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            assert_eq!(
                left,
                [std::ffi::OsString::from("secret_key_base")],
                "round {round}"
            );
        }
    }

    #[test]
    fn admin_credentials_default_in_development_only() {
        assert_eq!(
            admin_credentials(None, None, Env::Dev).ok(),
            Some(AdminCredentials::development())
        );
        assert!(matches!(
            admin_credentials(Some("a"), None, Env::Prod),
            Err(ConfigError::MissingAdminCredentials)
        ));
        let given = admin_credentials(Some("ops"), Some("s3cret"), Env::Dev).ok();
        assert_eq!(given.map(|c| c.user), Some("ops".to_owned()));
        let given = admin_credentials(Some("ops"), Some("correct horse battery"), Env::Prod).ok();
        assert_eq!(given.map(|c| c.user), Some("ops".to_owned()));
    }

    #[test]
    fn production_refuses_weak_passwords_and_secrets() {
        for (password, reason) in [
            ("password", "too short"),
            ("Password123456", "a common password"),
            ("aaaaaaaaaaaaaaaa", "too few distinct characters"),
            ("administrator", "the same as the user name"),
        ] {
            let err = admin_credentials(Some("administrator"), Some(password), Env::Prod)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(reason), "{password}: {err}");
            if password.len() > "password".len() {
                assert!(
                    !err.contains(password),
                    "the password is never echoed: {err}"
                );
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        let weak = "a".repeat(20);
        assert!(matches!(
            resolve_secret_key_base(Some(&weak), Env::Prod, &file),
            Err(ConfigError::WeakSecret { .. })
        ));
        assert!(resolve_secret_key_base(Some(&weak), Env::Dev, &file).is_ok());
        let strong = "k8Jq2VxR9mTzL4wPfY7nB3cHs6dGe1aUoZ5tQiXv";
        assert!(resolve_secret_key_base(Some(strong), Env::Prod, &file).is_ok());
    }

    #[test]
    fn tracker_periods_are_validated_with_the_flag_values() {
        assert!(tracker_options(1500, None, 1_200_000, 2).is_ok());
        let err = tracker_options(1500, Some(2000), 1_200_000, 2)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("TRACKER_DOWN_PERIOD_MS=2000"), "{err}");
        assert!(err.contains("down_period"), "{err}");
        assert!(tracker_options(1500, Some(30_000), 30_000, 1).is_err());
        assert!(tracker_options(0, None, 1_200_000, 1).is_err());
    }
}
