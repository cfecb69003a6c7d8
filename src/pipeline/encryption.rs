//! age encryption of artifacts: who can read them, and the streaming layers that do it.
//!
//! An encrypted artifact is `zstd`, then age (`….zst.age`), so the stock CLIs open it:
//! `age -d -i key.txt < a.sql.zst.age | zstd -d`. It is encrypted either to one or more X25519
//! recipients (`age1…`, from `age-keygen`) or to one passphrase (age's scrypt recipient; age
//! does not allow both in one file). Only public keys are recorded in the manifest. Restores
//! read identity files (`age-keygen` output) or the passphrase. Post-quantum and SSH recipients
//! are refused: the age 1.1 CLI that Debian ships cannot read the former, and the latter tie
//! backups to login keys.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::SecretString;
use age::stream::{StreamReader, StreamWriter};
use age::{DecryptError, Decryptor, Encryptor, Identity, IdentityFile, Recipient, scrypt, x25519};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Why encryption could not be set up, or an artifact could not be opened. None of these
/// go away by retrying: a key, a file or the configuration has to change.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// A configuration value is unusable.
    #[error("{key}: {reason}")]
    Invalid {
        /// The config key, dotted.
        key: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A recipients or identity file cannot be read.
    #[error("{what} {path}: {source}")]
    File {
        /// Which file it is (`encryption.recipients_file`, `identity file`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The artifact cannot be decrypted with the keys given.
    #[error("{0}")]
    Decrypt(String),
}

impl crate::error::Temporary for EncryptionError {
    fn is_temporary(&self) -> bool {
        false
    }
}

/// The highest scrypt work factor a restore accepts (bounds the memory a file can demand).
const MAX_WORK_FACTOR: u8 = 22;

/// age encryption settings. See `config/stowage.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// X25519 recipients (`age1…`); a list, or one string separated by commas or spaces.
    #[serde(default, deserialize_with = "one_or_many")]
    pub recipients: Vec<String>,
    /// A file of recipients, one per line (`#` comments), as `age -R` reads.
    #[serde(default)]
    pub recipients_file: Option<PathBuf>,
    /// A passphrase instead of recipients (age's scrypt recipient).
    #[serde(default)]
    pub passphrase: Option<Secret>,
    /// scrypt work factor (log2 N) for passphrase encryption.
    #[serde(default = "default_work_factor")]
    pub scrypt_work_factor: u8,
    /// Identity file(s) for `stowage restore` (`age-keygen` output).
    #[serde(default, deserialize_with = "one_or_many_paths")]
    pub identity_files: Vec<PathBuf>,
}

fn default_work_factor() -> u8 {
    16
}

fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// A list, or one string of comma- or space-separated items (how environment variables say it).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => split_list(&s),
        OneOrMany::Many(v) => v,
    })
}

fn one_or_many_paths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    Ok(one_or_many(d)?.into_iter().map(PathBuf::from).collect())
}

/// How artifacts are encrypted, from the configuration.
pub struct Encryption {
    kind: Kind,
}

enum Kind {
    Recipients(Vec<x25519::Recipient>),
    Passphrase { passphrase: Secret, work_factor: u8 },
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encryption({:?})", self.info())
    }
}

/// What the manifest says about an encrypted artifact. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    /// Always `age`.
    pub format: String,
    /// The X25519 recipients' public keys.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Whether it is encrypted to a passphrase instead.
    #[serde(default)]
    pub passphrase: bool,
}

impl Encryption {
    /// The configured encryption; `None` when no recipient and no passphrase is set.
    pub fn from_config(c: &EncryptionConfig) -> Result<Option<Self>, EncryptionError> {
        let mut texts = c.recipients.clone();
        if let Some(path) = &c.recipients_file {
            texts.extend(read_recipients_file(path)?);
        }
        let recipients = texts
            .iter()
            .map(|t| parse_recipient(t))
            .collect::<Result<Vec<_>, _>>()?;
        match (&c.passphrase, recipients.is_empty()) {
            (None, true) => Ok(None),
            (None, false) => Ok(Some(Self {
                kind: Kind::Recipients(recipients),
            })),
            (Some(_), false) => Err(EncryptionError::Invalid {
                key: "encryption.passphrase",
                reason: "encryption.passphrase and recipients are both set, but an age file is encrypted either to recipients or to one passphrase; keep one".into(),
            }),
            (Some(p), true) => {
                if p.expose().is_empty() {
                    return Err(EncryptionError::Invalid {
                        key: "encryption.passphrase",
                        reason: "it is empty".into(),
                    });
                }
                if !(10..=MAX_WORK_FACTOR).contains(&c.scrypt_work_factor) {
                    return Err(EncryptionError::Invalid {
                        key: "encryption.scrypt_work_factor",
                        reason: format!("{} is outside 10..={MAX_WORK_FACTOR}", c.scrypt_work_factor),
                    });
                }
                Ok(Some(Self {
                    kind: Kind::Passphrase {
                        passphrase: p.clone(),
                        work_factor: c.scrypt_work_factor,
                    },
                }))
            }
        }
    }

    /// For the manifest.
    pub fn info(&self) -> EncryptionInfo {
        match &self.kind {
            Kind::Recipients(r) => EncryptionInfo {
                format: "age".into(),
                recipients: r.iter().map(|r| r.to_string()).collect(),
                passphrase: false,
            },
            Kind::Passphrase { .. } => EncryptionInfo {
                format: "age".into(),
                recipients: vec![],
                passphrase: true,
            },
        }
    }

    /// Wraps `output` in an age encryption stream. Call `finish` on it at the end.
    pub fn wrap<W: Write>(&self, output: W) -> io::Result<StreamWriter<W>> {
        let encryptor = match &self.kind {
            Kind::Recipients(r) => {
                Encryptor::with_recipients(r.iter().map(|r| r as &dyn Recipient))
            }
            Kind::Passphrase {
                passphrase,
                work_factor,
            } => {
                let mut r =
                    scrypt::Recipient::new(SecretString::from(passphrase.expose().to_string()));
                r.set_work_factor(*work_factor);
                Encryptor::with_recipients(std::iter::once(&r as &dyn Recipient))
            }
        }
        .map_err(|e| io::Error::other(format!("age: {e}")))?;
        encryptor.wrap_output(output)
    }
}

fn parse_recipient(text: &str) -> Result<x25519::Recipient, EncryptionError> {
    let text = text.trim();
    let invalid = |reason| EncryptionError::Invalid {
        key: "encryption.recipients",
        reason,
    };
    if text.starts_with("age1pq") || text.starts_with("ssh-") {
        return Err(invalid(format!(
            "recipient {text:.20}…: only X25519 recipients (age1…, from age-keygen) are supported"
        )));
    }
    x25519::Recipient::from_str(text).map_err(|e| {
        invalid(format!(
            "recipient {text:?} is not an age X25519 public key (age1…): {e}"
        ))
    })
}

fn read_recipients_file(path: &Path) -> Result<Vec<String>, EncryptionError> {
    let file_error = |source| EncryptionError::File {
        what: "encryption.recipients_file",
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(file_error)?;
    let mut out = Vec::new();
    for line in io::BufReader::new(file).lines() {
        let line = line.map_err(file_error)?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// Keys that can open artifacts: identity files and/or a passphrase.
pub struct Identities {
    keys: Vec<Box<dyn Identity + Send + Sync>>,
    passphrase: Option<scrypt::Identity>,
    sources: Vec<String>,
}

impl Identities {
    /// Loads identity files (`age-keygen` output; `#` comments allowed) and the passphrase.
    pub fn load(files: &[PathBuf], passphrase: Option<&Secret>) -> Result<Self, EncryptionError> {
        let mut keys = Vec::new();
        let mut sources = Vec::new();
        for path in files {
            let file_error = |source| EncryptionError::File {
                what: "identity file",
                path: path.clone(),
                source,
            };
            let file = IdentityFile::from_file(path.display().to_string()).map_err(file_error)?;
            let ids = file.into_identities().map_err(|e| {
                file_error(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            })?;
            keys.extend(ids);
            sources.push(path.display().to_string());
        }
        let passphrase = passphrase.map(|p| {
            sources.push("the passphrase".into());
            let mut id = scrypt::Identity::new(SecretString::from(p.expose().to_string()));
            id.set_max_work_factor(MAX_WORK_FACTOR);
            id
        });
        Ok(Self {
            keys,
            passphrase,
            sources,
        })
    }

    /// Whether there is anything to decrypt with.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.passphrase.is_none()
    }

    /// Opens an age stream. The error says which keys were tried and, from the manifest,
    /// which the artifact needs.
    pub fn open<R: BufRead>(
        &self,
        input: R,
        info: Option<&EncryptionInfo>,
    ) -> Result<StreamReader<R>, EncryptionError> {
        let decryptor = Decryptor::new_buffered(input)
            .map_err(|e| EncryptionError::Decrypt(format!("not a readable age file: {e}")))?;
        let result = if decryptor.is_scrypt() {
            match &self.passphrase {
                Some(p) => decryptor.decrypt(std::iter::once(p as &dyn Identity)),
                None => Err(DecryptError::NoMatchingKeys),
            }
        } else {
            decryptor.decrypt(self.keys.iter().map(|k| k.as_ref() as &dyn Identity))
        };
        result.map_err(|e| {
            let needs = match info {
                Some(i) if i.passphrase => "its passphrase (encryption.passphrase)".to_string(),
                Some(i) => format!("the identity of one of {}", i.recipients.join(", ")),
                None => "its key".into(),
            };
            let tried = if self.sources.is_empty() {
                "no identity was given (--identity FILE or encryption.identity_files)".to_string()
            } else {
                format!("tried {}", self.sources.join(", "))
            };
            EncryptionError::Decrypt(match e {
                DecryptError::NoMatchingKeys => {
                    format!("none of the keys can decrypt this artifact: it needs {needs}; {tried}")
                }
                DecryptError::DecryptionFailed | DecryptError::KeyDecryptionFailed => {
                    format!("decryption failed (wrong passphrase or damaged file): it needs {needs}; {tried}")
                }
                other => format!("cannot decrypt: {other}"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn config(recipients: Vec<String>, passphrase: Option<&str>) -> EncryptionConfig {
        EncryptionConfig {
            recipients,
            passphrase: passphrase.map(Secret::new),
            scrypt_work_factor: 10,
            ..Default::default()
        }
    }

    fn round_trip(enc: &Encryption, ids: &Identities) -> Result<Vec<u8>, String> {
        let mut w = enc.wrap(Vec::new()).unwrap();
        w.write_all(b"hello, stowage").unwrap();
        let sealed = w.finish().unwrap();
        let mut out = Vec::new();
        ids.open(&sealed[..], Some(&enc.info()))
            .map_err(|e| e.to_string())?
            .read_to_end(&mut out)
            .unwrap();
        Ok(out)
    }

    #[test]
    fn recipients_and_identities() {
        let key = x25519::Identity::generate();
        let other = x25519::Identity::generate();
        let enc = Encryption::from_config(&config(
            vec![key.to_public().to_string(), other.to_public().to_string()],
            None,
        ))
        .unwrap()
        .unwrap();
        assert_eq!(enc.info().recipients.len(), 2);
        assert!(!format!("{enc:?}").contains("AGE-SECRET-KEY"));

        let dir = std::env::temp_dir().join(format!("stowage-enc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key.txt");
        let secret = age::secrecy::ExposeSecret::expose_secret(&key.to_string()).to_string();
        std::fs::write(&file, format!("# created: now\n{secret}\n")).unwrap();
        let ids = Identities::load(std::slice::from_ref(&file), None).unwrap();
        assert_eq!(round_trip(&enc, &ids).unwrap(), b"hello, stowage");

        let stranger = dir.join("stranger.txt");
        let s = x25519::Identity::generate();
        std::fs::write(
            &stranger,
            age::secrecy::ExposeSecret::expose_secret(&s.to_string()),
        )
        .unwrap();
        let wrong = Identities::load(&[stranger], None).unwrap();
        let e = round_trip(&enc, &wrong).unwrap_err();
        assert!(
            e.contains("none of the keys") && e.contains("stranger.txt"),
            "{e}"
        );
        assert!(e.contains(&key.to_public().to_string()), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn passphrase_and_its_rules() {
        let enc = Encryption::from_config(&config(vec![], Some("correct horse")))
            .unwrap()
            .unwrap();
        assert!(enc.info().passphrase);
        let ids = Identities::load(&[], Some(&Secret::new("correct horse"))).unwrap();
        assert_eq!(round_trip(&enc, &ids).unwrap(), b"hello, stowage");
        let bad = Identities::load(&[], Some(&Secret::new("wrong"))).unwrap();
        assert!(
            round_trip(&enc, &bad)
                .unwrap_err()
                .contains("wrong passphrase")
        );

        let key = x25519::Identity::generate().to_public().to_string();
        let both = Encryption::from_config(&config(vec![key], Some("x")))
            .unwrap_err()
            .to_string();
        assert!(both.contains("either"), "{both}");
        assert!(
            Encryption::from_config(&config(vec![], None))
                .unwrap()
                .is_none()
        );
        let pq = Encryption::from_config(&config(vec!["age1pq1abc".into()], None))
            .unwrap_err()
            .to_string();
        assert!(pq.contains("only X25519"), "{pq}");
    }
}
