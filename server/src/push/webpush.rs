//! Web Push: message encryption (RFC 8291, `aes128gcm` content coding of RFC 8188) and VAPID
//! (RFC 8292), with `ring`.
//!
//! Encryption of one message for a subscription (`p256dh` = the user agent's P-256 public key,
//! `auth` = its 16-byte secret): a fresh ephemeral P-256 key pair of the application server,
//! ECDH with the user agent's key, `IKM = HKDF(salt = auth, ikm = ecdh, info = "WebPush: info"
//! 0x00 ua_public as_public, 32)`, a random 16-byte salt, `CEK = HKDF(salt, IKM, "Content-Encoding:
//! aes128gcm" 0x00, 16)` and `NONCE = HKDF(salt, IKM, "Content-Encoding: nonce" 0x00, 12)`, one
//! record: the payload, the last-record delimiter 0x02 and zero padding, sealed with
//! AES-128-GCM. The body is the header `salt | rs (u32) | idlen (65) | as_public` and the record.
//!
//! VAPID: an ES256 JWT (`aud` = the endpoint's origin, `exp` within 24 h, `sub` = the operator's
//! contact) in `Authorization: vapid t=<jwt>, k=<public key>`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use ring::{aead, agreement, hkdf};

/// The record size written in the header (one record per message).
pub const RECORD_SIZE: u32 = 4096;
/// Header: salt (16), rs (4), idlen (1), key id (65).
pub const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// The most a push message body may be, header included (RFC 8291 section 4: push services
/// need accept no more than 4096 octets).
pub const MAX_BODY: usize = 4096;
/// Longest payload (with its padding) one message holds: 4096 octets less the header, the
/// padding delimiter and the AEAD tag, i.e. 3993 (RFC 8291 section 4).
pub const MAX_PAYLOAD: usize = MAX_BODY - HEADER_LEN - 1 - 16;

/// A failure of the crypto (bad keys of a subscription, mostly).
#[derive(Debug, thiserror::Error)]
#[error("web push: {0}")]
pub struct CryptoError(pub &'static str);

/// Decodes base64url with or without padding (browsers send either).
pub fn b64(s: &str) -> Result<Vec<u8>, CryptoError> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| CryptoError("not base64url"))
}

/// Encodes base64url without padding.
pub fn b64e(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256: extract with `salt`, expand with `info` to `len` bytes.
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[&[u8]], len: usize) -> Result<Vec<u8>, CryptoError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let okm = prk.expand(info, Len(len)).map_err(|_| CryptoError("hkdf length"))?;
    let mut out = vec![0u8; len];
    okm.fill(&mut out).map_err(|_| CryptoError("hkdf fill"))?;
    Ok(out)
}

/// The content-encryption key and nonce of RFC 8291 from the ECDH secret and both public keys.
pub fn derive(
    ecdh_secret: &[u8],
    auth: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let ikm = hkdf_sha256(auth, ecdh_secret, &[b"WebPush: info\0", ua_public, as_public], 32)?;
    let cek = hkdf_sha256(salt, &ikm, &[b"Content-Encoding: aes128gcm\0"], 16)?;
    let nonce = hkdf_sha256(salt, &ikm, &[b"Content-Encoding: nonce\0"], 12)?;
    Ok((cek, nonce))
}

/// The encrypted body from its inputs (deterministic: the RFC's example is a unit test).
pub fn seal(
    ecdh_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    auth: &[u8],
    salt: &[u8; 16],
    payload: &[u8],
    padding: usize,
) -> Result<Vec<u8>, CryptoError> {
    if payload.len() + padding > MAX_PAYLOAD {
        return Err(CryptoError("payload too large for one record"));
    }
    if as_public.len() != 65 {
        return Err(CryptoError("bad server key"));
    }
    let (cek, nonce) = derive(ecdh_secret, auth, ua_public, as_public, salt)?;
    let key =
        aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek).map_err(|_| CryptoError("aes key"))?);
    let nonce = aead::Nonce::try_assume_unique_for_key(&nonce).map_err(|_| CryptoError("nonce"))?;
    let mut record = Vec::with_capacity(payload.len() + 1 + padding + 16);
    record.extend_from_slice(payload);
    record.push(2);
    record.resize(payload.len() + 1 + padding, 0);
    key.seal_in_place_append_tag(nonce, aead::Aad::empty(), &mut record).map_err(|_| CryptoError("seal"))?;
    let mut body = Vec::with_capacity(HEADER_LEN + record.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// Encrypts `payload` for the subscription with keys `p256dh` and `auth` (base64url).
pub fn encrypt(p256dh: &str, auth: &str, payload: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let ua_public = b64(p256dh)?;
    let auth = b64(auth)?;
    if ua_public.len() != 65 || auth.len() != 16 {
        return Err(CryptoError("bad subscription keys"));
    }
    let rng = SystemRandom::new();
    let eph = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).map_err(|_| CryptoError("rng"))?;
    let as_public = eph.compute_public_key().map_err(|_| CryptoError("public key"))?.as_ref().to_vec();
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &ua_public);
    let secret = agreement::agree_ephemeral(eph, &peer, |k| k.to_vec()).map_err(|_| CryptoError("bad p256dh"))?;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| CryptoError("rng"))?;
    // Pad to a multiple of 64 bytes so that lengths say less about the content.
    let padding = (64 - (payload.len() + 1) % 64) % 64;
    let padding = padding.min(MAX_PAYLOAD.saturating_sub(payload.len()));
    seal(&secret, &ua_public, &as_public, &auth, &salt, payload, padding)
}

/// Whether `p256dh` and `auth` are a usable subscription's keys.
pub fn valid_keys(p256dh: &str, auth: &str) -> bool {
    let ok_pub = b64(p256dh).is_ok_and(|k| {
        k.len() == 65 && k[0] == 4 && {
            // A point on the curve: ring checks it when agreeing with a throwaway key.
            let rng = SystemRandom::new();
            agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).is_ok_and(|eph| {
                agreement::agree_ephemeral(eph, &agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &k), |_| ())
                    .is_ok()
            })
        }
    });
    ok_pub && b64(auth).is_ok_and(|a| a.len() == 16)
}

/// The VAPID key pair of the server.
pub struct Vapid {
    key: EcdsaKeyPair,
    public: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid").field("public", &self.public).finish_non_exhaustive()
    }
}

impl Vapid {
    /// From a raw private key and its uncompressed public key, both base64url (the form VAPID
    /// tools print).
    pub fn from_raw(private: &str, public: &str) -> Result<Self, CryptoError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &b64(private)?,
            &b64(public)?,
            &rng,
        )
        .map_err(|_| CryptoError("bad VAPID key pair"))?;
        Ok(Self::of(key))
    }

    /// From a PKCS#8 document, base64url (the form the server stores).
    pub fn from_pkcs8(doc: &str) -> Result<Self, CryptoError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &b64(doc)?, &rng)
            .map_err(|_| CryptoError("bad VAPID key"))?;
        Ok(Self::of(key))
    }

    /// A new key pair as a PKCS#8 document, base64url.
    pub fn generate_pkcs8() -> Result<String, CryptoError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| CryptoError("key generation"))?;
        Ok(b64e(doc.as_ref()))
    }

    fn of(key: EcdsaKeyPair) -> Self {
        let public = b64e(key.public_key().as_ref());
        Vapid { key, public }
    }

    /// The public key, base64url (the browser's `applicationServerKey`).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `endpoint` (its origin is the audience), valid
    /// until `exp` (seconds since the epoch).
    pub fn authorization(&self, endpoint: &str, subject: &str, exp: i64) -> Result<String, CryptoError> {
        let aud = origin(endpoint).ok_or(CryptoError("endpoint is not a URL"))?;
        let header = b64e(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({"aud": aud, "exp": exp, "sub": subject}).to_string();
        let input = format!("{header}.{}", b64e(claims.as_bytes()));
        let sig = self.key.sign(&SystemRandom::new(), input.as_bytes()).map_err(|_| CryptoError("sign"))?;
        Ok(format!("vapid t={input}.{}, k={}", b64e(sig.as_ref()), self.public))
    }
}

/// `scheme://host[:port]` of a URL.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty() && (scheme == "https" || scheme == "http")).then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8291 section 5 (and appendix A): the worked example's keys, salt and result.
    const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const ECDH: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    const CEK: &str = "oIhVW04MRdy2XN9CiKLxTg";
    const NONCE: &str = "4h_95klXJ5E_qnoN";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
    const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";

    #[test]
    fn rfc8291_example_key_derivation() -> Result<(), CryptoError> {
        let (cek, nonce) = derive(&b64(ECDH)?, &b64(AUTH)?, &b64(UA_PUBLIC)?, &b64(AS_PUBLIC)?, &b64(SALT)?)?;
        assert_eq!(b64e(&cek), CEK);
        assert_eq!(b64e(&nonce), NONCE);
        Ok(())
    }

    #[test]
    fn rfc8291_example_body() -> Result<(), CryptoError> {
        let salt: [u8; 16] = b64(SALT)?.try_into().map_err(|_| CryptoError("salt"))?;
        let body = seal(&b64(ECDH)?, &b64(UA_PUBLIC)?, &b64(AS_PUBLIC)?, &b64(AUTH)?, &salt, PLAINTEXT, 0)?;
        assert_eq!(b64e(&body), BODY);
        Ok(())
    }

    #[test]
    fn vapid_jwt_verifies_with_the_public_key() -> Result<(), CryptoError> {
        let vapid = Vapid::from_raw(AS_PRIVATE, AS_PUBLIC)?;
        assert_eq!(vapid.public_key(), AS_PUBLIC);
        let auth = vapid.authorization("https://push.example.net/x/y?z", "mailto:ops@example.com", 1_900_000_000)?;
        let rest = auth.strip_prefix("vapid t=").ok_or(CryptoError("scheme"))?;
        let (jwt, k) = rest.split_once(", k=").ok_or(CryptoError("k"))?;
        assert_eq!(k, AS_PUBLIC);
        let (input, sig) = jwt.rsplit_once('.').ok_or(CryptoError("jwt"))?;
        let claims = b64(input.split_once('.').ok_or(CryptoError("jwt"))?.1)?;
        let claims: serde_json::Value = serde_json::from_slice(&claims).map_err(|_| CryptoError("claims"))?;
        assert_eq!(claims["aud"], "https://push.example.net");
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, b64(AS_PUBLIC)?);
        key.verify(input.as_bytes(), &b64(sig)?).map_err(|_| CryptoError("signature"))?;
        let stored = Vapid::from_pkcs8(&Vapid::generate_pkcs8()?)?;
        assert_eq!(b64(stored.public_key())?.len(), 65);
        Ok(())
    }

    #[test]
    fn bodies_fit_the_4096_byte_limit() -> Result<(), CryptoError> {
        assert_eq!(MAX_PAYLOAD, 3993);
        let most = vec![b'x'; MAX_PAYLOAD];
        assert_eq!(encrypt(UA_PUBLIC, AUTH, &most)?.len(), MAX_BODY);
        assert!(encrypt(UA_PUBLIC, AUTH, &vec![b'x'; MAX_PAYLOAD + 1]).is_err());
        // Padding never pushes a payload that fits over the limit.
        for n in [0, 1, 100, 3900, 3950, 3992] {
            assert!(encrypt(UA_PUBLIC, AUTH, &vec![b'y'; n])?.len() <= MAX_BODY, "{n}");
        }
        Ok(())
    }

    #[test]
    fn subscription_keys_are_checked() {
        assert!(valid_keys(UA_PUBLIC, AUTH));
        assert!(!valid_keys(UA_PUBLIC, "AAAA"));
        assert!(!valid_keys("BAAA", AUTH));
        assert_eq!(origin("https://fcm.googleapis.com/fcm/send/abc").as_deref(), Some("https://fcm.googleapis.com"));
        assert_eq!(origin("ftp://x/y"), None);
    }
}
