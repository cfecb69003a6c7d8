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

use crate::config;
use crate::secret::Secret;

/// The highest scrypt work factor a restore accepts (bounds the memory a file can demand).
const MAX_WORK_FACTOR: u8 = 22;

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
    pub fn from_config(c: &config::Encryption) -> Result<Option<Self>, String> {
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
            (Some(_), false) => Err(
                "encryption.passphrase and recipients are both set, but an age file is encrypted either to recipients or to one passphrase; keep one"
                    .into(),
            ),
            (Some(p), true) => {
                if p.expose().is_empty() {
                    return Err("encryption.passphrase is empty".into());
                }
                if !(10..=MAX_WORK_FACTOR).contains(&c.scrypt_work_factor) {
                    return Err(format!(
                        "encryption.scrypt_work_factor {} is outside 10..={MAX_WORK_FACTOR}",
                        c.scrypt_work_factor
                    ));
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

fn parse_recipient(text: &str) -> Result<x25519::Recipient, String> {
    let text = text.trim();
    if text.starts_with("age1pq") || text.starts_with("ssh-") {
        return Err(format!(
            "recipient {text:.20}…: only X25519 recipients (age1…, from age-keygen) are supported"
        ));
    }
    x25519::Recipient::from_str(text)
        .map_err(|e| format!("recipient {text:?} is not an age X25519 public key (age1…): {e}"))
}

fn read_recipients_file(path: &Path) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("encryption.recipients_file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for line in io::BufReader::new(file).lines() {
        let line =
            line.map_err(|e| format!("encryption.recipients_file {}: {e}", path.display()))?;
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
    pub fn load(files: &[PathBuf], passphrase: Option<&Secret>) -> Result<Self, String> {
        let mut keys = Vec::new();
        let mut sources = Vec::new();
        for path in files {
            let file = IdentityFile::from_file(path.display().to_string())
                .map_err(|e| format!("identity file {}: {e}", path.display()))?;
            let ids = file
                .into_identities()
                .map_err(|e| format!("identity file {}: {e}", path.display()))?;
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
    ) -> Result<StreamReader<R>, String> {
        let decryptor =
            Decryptor::new_buffered(input).map_err(|e| format!("not a readable age file: {e}"))?;
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
            match e {
                DecryptError::NoMatchingKeys => {
                    format!("none of the keys can decrypt this artifact: it needs {needs}; {tried}")
                }
                DecryptError::DecryptionFailed | DecryptError::KeyDecryptionFailed => {
                    format!("decryption failed (wrong passphrase or damaged file): it needs {needs}; {tried}")
                }
                other => format!("cannot decrypt: {other}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn config(recipients: Vec<String>, passphrase: Option<&str>) -> config::Encryption {
        config::Encryption {
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
        ids.open(&sealed[..], Some(&enc.info()))?
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
        let both = Encryption::from_config(&config(vec![key], Some("x"))).unwrap_err();
        assert!(both.contains("either"), "{both}");
        assert!(
            Encryption::from_config(&config(vec![], None))
                .unwrap()
                .is_none()
        );
        let pq = Encryption::from_config(&config(vec!["age1pq1abc".into()], None)).unwrap_err();
        assert!(pq.contains("only X25519"), "{pq}");
    }
}
