//! Kafka user passwords, derived rather than stored: `hex(HMAC-SHA256(K, user id ‖ generation ‖ salt))`, first
//! 24 bytes (192 bits). `K` is the platform's credentials key, given to the api and worker roles only; the salt
//! is drawn for each generation and recorded in its event. So the API can answer the password once, the worker
//! can write the same password into the user's Secret, and no event, workflow input or database row ever holds
//! it. Without `K` a salt and a user id say nothing about the password.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// The platform's credentials key (at least 32 bytes).
#[derive(Clone)]
pub struct CredentialsKey(Vec<u8>);

/// Never printed: a `{:?}` of the configuration must not show the key.
impl std::fmt::Debug for CredentialsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialsKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the credentials key must have at least 32 bytes (it has {0})")]
pub struct ShortKey(usize);

impl CredentialsKey {
    pub const MIN_BYTES: usize = 32;

    /// The key from its file's contents (surrounding whitespace is not part of it).
    pub fn from_bytes(raw: &[u8]) -> Result<Self, ShortKey> {
        let key = raw.trim_ascii();
        if key.len() < Self::MIN_BYTES {
            return Err(ShortKey(key.len()));
        }
        Ok(Self(key.to_vec()))
    }

    /// The password of `user`'s credentials of `generation`, drawn with `salt`.
    pub fn password(&self, user: Uuid, generation: u32, salt: &str) -> String {
        // HMAC takes a key of any length: `new_from_slice` cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else { unreachable!("HMAC accepts any key length") };
        mac.update(user.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac.update(salt.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..24])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_depends_on_key_user_generation_and_salt() {
        let k = CredentialsKey::from_bytes(&[7u8; 32]).unwrap();
        let u = Uuid::from_u128(1);
        let p = k.password(u, 1, "aa");
        assert_eq!(p.len(), 48);
        assert_eq!(p, k.password(u, 1, "aa"));
        assert_ne!(p, k.password(u, 2, "aa"));
        assert_ne!(p, k.password(u, 1, "ab"));
        assert_ne!(p, k.password(Uuid::from_u128(2), 1, "aa"));
        assert_ne!(p, CredentialsKey::from_bytes(&[8u8; 32]).unwrap().password(u, 1, "aa"));
        assert!(CredentialsKey::from_bytes(b" short \n").is_err());
        assert_eq!(format!("{k:?}"), "CredentialsKey(..)");
    }
}
