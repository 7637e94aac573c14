//! Verifying AWS Signature Version 4, as a Kinesis endpoint does (kinesis-api.md §1.5).
//!
//! [`verify`] takes a request as it arrived — method, raw path and query, headers, body — the
//! current time and a way to look up an access key, and answers with the verified identity or
//! the error AWS would send. It is pure: no clock, no I/O, no logging. The server calls it for
//! every request once the body is in (the payload hash needs the body) and before anything is
//! executed.
//!
//! **What is checked, in order** (each step's failure is the answer):
//!
//! 1. The form: the `Authorization` header or the presigned query (`X-Amz-Algorithm` among the
//!    query parameters). Both → `InvalidSignature` ("Found both …"); neither →
//!    `MissingAuthenticationToken`.
//! 2. Completeness: `Credential`, `Signature`, `SignedHeaders` and a date (`X-Amz-Date`, else
//!    `Date`), or the query's five `X-Amz-*` parameters → `IncompleteSignature` with AWS's
//!    texts; the algorithm must be `AWS4-HMAC-SHA256`; the date must parse.
//! 3. The credential scope `AKID/yyyymmdd/region/kinesis/aws4_request`: five parts; the date
//!    that of `X-Amz-Date`; the service `kinesis`; the terminator `aws4_request`. Any region is
//!    accepted and reported in [`Verified::region`] (the server's own region goes into ARNs).
//! 4. The access key id is known → else `UnrecognizedClient`.
//! 5. The time: within [`CLOCK_SKEW_MS`] (5 minutes) of now either way, with AWS's "Signature
//!    expired" / "Signature not yet current" texts; a presigned request with `X-Amz-Expires`
//!    is good from its date (less the skew) until date + expires.
//! 6. `host` (or `:authority`) is signed.
//! 7. The payload hash: `X-Amz-Content-Sha256` when sent — `UNSIGNED-PAYLOAD`, or the body's
//!    SHA-256 (anything else is refused, so a body cannot be swapped under a header that
//!    vouches for another) — else the SHA-256 of the raw body.
//! 8. The signature: the canonical request (method; the path, dot segments removed and
//!    URI-encoded again as AWS does for every service but S3; the query sorted and
//!    URI-encoded without `X-Amz-Signature`; each signed header as `name:value`, values
//!    trimmed with inner whitespace collapsed and repeats joined by `,`, in `SignedHeaders`
//!    order; the list; the payload hash), the string to sign, the HMAC chain from the secret,
//!    and a constant-time comparison ([`hmac::Mac::verify_slice`]) → else `InvalidSignature`.
//!
//! `X-Amz-Security-Token` is signed like any header and otherwise ignored: there is no STS,
//! so keys come only from the server's credentials file. Secrets never leave the lookup's
//! value and are never part of an error.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::KinesisError;
use crate::time::{amz_date, parse_amz_date, parse_http_date};

/// The one algorithm served.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The signing name of Kinesis.
pub const SERVICE: &str = "kinesis";
/// The last element of every SigV4 credential scope.
pub const TERMINATOR: &str = "aws4_request";
/// How far a request's date may be from the server's clock, either way (Kinesis: 5 minutes).
pub const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// The longest `X-Amz-Expires` of a presigned request: a week, as everywhere in SigV4.
pub const PRESIGNED_EXPIRES_S_MAX: i64 = 604_800;
/// The `X-Amz-Content-Sha256` value by which a signer leaves the body unsigned.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

type HmacSha256 = Hmac<Sha256>;

/// A request as it arrived, in the pieces SigV4 signs.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `POST` for every Kinesis call.
    pub method: &'a str,
    /// The path as sent, still percent-encoded (`/`).
    pub path: &'a str,
    /// The query string as sent, without the `?` (empty when there is none).
    pub query: &'a str,
    /// The URI authority: on HTTP/2 the host travels as `:authority` (hyper: `uri().authority()`)
    /// and there is no `host` header; it stands in for `host` when that header is absent.
    pub authority: Option<&'a str>,
    /// Every header, names in any case, repeated names as separate entries in arrival order.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The raw body.
    pub body: &'a [u8],
}

/// What the key store holds for an access key: here, only its secret matters.
pub trait SecretKey {
    /// The secret access key the signing key is derived from.
    fn secret_access_key(&self) -> &str;
}

/// The identity a request proved.
#[derive(Debug)]
pub struct Verified<'k, K: ?Sized> {
    /// What the lookup returned for the access key id.
    pub key: &'k K,
    pub access_key_id: String,
    /// The region of the credential scope, as the client signed it (any region is accepted).
    pub region: String,
    /// The request's signing time, epoch milliseconds.
    pub signed_at_ms: i64,
    /// Whether the signature came in the query string (presigned) rather than the header.
    pub presigned: bool,
}

/// The signing parameters of a request, from either form, before any check against keys.
struct Claim {
    credential: String,
    signed_headers: String,
    signature: String,
    /// The date as sent, and whether it is an HTTP `Date` rather than an `X-Amz-Date`.
    date: String,
    http_date: bool,
    /// `X-Amz-Expires` of a presigned request, seconds.
    expires_s: Option<i64>,
    presigned: bool,
}

/// Verifies the SigV4 signature of `request` at `now_ms`, looking the access key id up with
/// `lookup`. See the module documentation for every check and its error.
pub fn verify<'k, K: SecretKey + ?Sized>(
    request: &SignedRequest<'_>,
    now_ms: i64,
    lookup: impl FnOnce(&str) -> Option<&'k K>,
) -> Result<Verified<'k, K>, KinesisError> {
    let query = parse_query(request.query);
    let claim = claim(request, &query)?;

    let signed_ms = if claim.http_date {
        parse_http_date(&claim.date)
    } else {
        parse_amz_date(&claim.date)
    }
    .ok_or_else(|| KinesisError::signing_date_malformed(&claim.date))?;
    let stamp = amz_date(signed_ms);

    let scope: Vec<&str> = claim.credential.split('/').collect();
    let [access_key_id, scope_date, region, service, terminator] = scope[..] else {
        return Err(KinesisError::credential_malformed(&claim.credential));
    };
    if scope_date != &stamp[..8] {
        return Err(KinesisError::credential_scope_date(scope_date, &stamp));
    }
    if service != SERVICE {
        return Err(KinesisError::credential_scope_service(SERVICE));
    }
    if terminator != TERMINATOR {
        return Err(KinesisError::credential_scope_terminator(terminator));
    }
    if region.is_empty() {
        return Err(KinesisError::credential_scope_region(region));
    }

    let key = lookup(access_key_id).ok_or_else(KinesisError::unrecognized_client)?;

    if signed_ms > now_ms.saturating_add(CLOCK_SKEW_MS) {
        return Err(KinesisError::signature_not_yet_current(
            signed_ms,
            now_ms,
            CLOCK_SKEW_MS,
        ));
    }
    match claim.expires_s {
        Some(expires_s) => {
            if now_ms > signed_ms.saturating_add(expires_s.saturating_mul(1000)) {
                return Err(KinesisError::presigned_expired(
                    signed_ms, expires_s, now_ms,
                ));
            }
        }
        None => {
            if signed_ms < now_ms.saturating_sub(CLOCK_SKEW_MS) {
                return Err(KinesisError::signature_expired(
                    signed_ms,
                    now_ms,
                    CLOCK_SKEW_MS,
                ));
            }
        }
    }

    let signed_names: Vec<&str> = claim.signed_headers.split(';').collect();
    if !signed_names
        .iter()
        .any(|name| name.eq_ignore_ascii_case("host") || *name == ":authority")
    {
        return Err(KinesisError::host_not_signed());
    }

    let body_hash = hex(&Sha256::digest(request.body));
    let payload_hash = match header_values(request, "x-amz-content-sha256").next() {
        Some(sent) if sent == UNSIGNED_PAYLOAD.as_bytes() => UNSIGNED_PAYLOAD.to_owned(),
        Some(sent) if sent.eq_ignore_ascii_case(body_hash.as_bytes()) => {
            String::from_utf8_lossy(sent).into_owned()
        }
        Some(_) => return Err(KinesisError::payload_hash_mismatch()),
        None => body_hash,
    };

    let canonical = canonical_request(
        request,
        &query,
        &signed_names,
        &claim.signed_headers,
        &payload_hash,
    );
    let scope = format!("{scope_date}/{region}/{service}/{terminator}");
    let to_sign = string_to_sign(&stamp, &scope, &canonical);
    let key_bytes = signing_key(key.secret_access_key(), scope_date, region, service);
    let provided = decode_hex(&claim.signature).ok_or_else(KinesisError::invalid_signature)?;
    let mut mac = hmac_sha256(&key_bytes);
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&provided)
        .map_err(|_| KinesisError::invalid_signature())?;

    Ok(Verified {
        key,
        access_key_id: access_key_id.to_owned(),
        region: region.to_owned(),
        signed_at_ms: signed_ms,
        presigned: claim.presigned,
    })
}

/// The access key id a request claims, without verifying anything: from the `Authorization`
/// header's `Credential=`, else the query's `X-Amz-Credential`. For servers that run without
/// keys and take the key id as a hint (a 12-digit one names the account).
pub fn claimed_access_key_id(request: &SignedRequest<'_>) -> Option<String> {
    let credential = match authorization(request) {
        Some(header) => header
            .split([',', ' '])
            .find_map(|part| part.trim().strip_prefix("Credential="))?
            .to_owned(),
        None => query_value(&parse_query(request.query), "X-Amz-Credential")?.into_owned(),
    };
    let access_key_id = credential.split('/').next().unwrap_or_default();
    (!access_key_id.is_empty()).then(|| access_key_id.to_owned())
}

/// The first `Authorization` header, if any (as text; a non-UTF-8 one reads as lossy text, and
/// then fails to parse or to verify).
fn authorization<'r>(request: &'r SignedRequest<'_>) -> Option<Cow<'r, str>> {
    header_values(request, "authorization")
        .next()
        .map(String::from_utf8_lossy)
}

/// Steps 1 and 2: which form, and all its parts present.
fn claim(request: &SignedRequest<'_>, query: &[(Vec<u8>, Vec<u8>)]) -> Result<Claim, KinesisError> {
    let header = authorization(request);
    let query_algorithm = query_value(query, "X-Amz-Algorithm");
    match (header, query_algorithm) {
        (Some(_), Some(_)) => Err(KinesisError::signature_both_forms()),
        (None, None) => Err(KinesisError::missing_authentication_token()),
        (Some(header), None) => header_claim(request, header),
        (None, Some(_)) => query_claim(query),
    }
}

fn header_claim(request: &SignedRequest<'_>, header: Cow<'_, str>) -> Result<Claim, KinesisError> {
    // AWS splits on commas and spaces alike: `Credential= AKID/…` leaves a part without `=`.
    let mut parts = header.split([',', ' ']).filter(|part| !part.is_empty());
    let algorithm = parts.next().unwrap_or_default();
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in parts {
        let Some((name, value)) = part.split_once('=') else {
            return Err(KinesisError::authorization_part_without_equals(
                part, &header,
            ));
        };
        match name {
            "Credential" => credential = value,
            "SignedHeaders" => signed_headers = value,
            "Signature" => signature = value,
            _ => {}
        }
    }
    let date = match (
        header_values(request, "x-amz-date").next(),
        header_values(request, "date").next(),
    ) {
        (Some(date), _) => Some((date, false)),
        (None, Some(date)) => Some((date, true)),
        (None, None) => None,
    };
    let mut missing = Vec::new();
    for (name, value) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed_headers),
    ] {
        if value.is_empty() {
            missing.push(name);
        }
    }
    if date.is_none() {
        missing.push("Date");
    }
    let Some((date, is_http_date)) = date.filter(|_| missing.is_empty()) else {
        return Err(KinesisError::incomplete_signature_header(&missing, &header));
    };
    if algorithm != ALGORITHM {
        return Err(KinesisError::signing_algorithm_unsupported(algorithm));
    }
    Ok(Claim {
        credential: credential.to_owned(),
        signed_headers: signed_headers.to_owned(),
        signature: signature.to_owned(),
        date: String::from_utf8_lossy(date).into_owned(),
        http_date: is_http_date,
        expires_s: None,
        presigned: false,
    })
}

fn query_claim(query: &[(Vec<u8>, Vec<u8>)]) -> Result<Claim, KinesisError> {
    let required = |name: &'static str| {
        let value = query_value(query, name).filter(|value| !value.is_empty());
        (name, value)
    };
    // In the order of AWS's text.
    let parameters = [
        required("X-Amz-Algorithm"),
        required("X-Amz-Credential"),
        required("X-Amz-Signature"),
        required("X-Amz-SignedHeaders"),
        required("X-Amz-Date"),
    ];
    let missing: Vec<&str> = parameters
        .iter()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| *name)
        .collect();
    let [(_, Some(algorithm)), (_, Some(credential)), (_, Some(signature)), (_, Some(signed_headers)), (_, Some(date))] =
        parameters
    else {
        return Err(KinesisError::incomplete_signature_query(&missing));
    };
    if algorithm != ALGORITHM {
        return Err(KinesisError::signing_algorithm_unsupported(&algorithm));
    }
    let expires_s = match query_value(query, "X-Amz-Expires") {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(seconds)
                if (1..=PRESIGNED_EXPIRES_S_MAX).contains(&seconds)
                    && text.bytes().all(|byte| byte.is_ascii_digit()) =>
            {
                Some(seconds)
            }
            _ => return Err(KinesisError::presigned_expires_invalid(&text)),
        },
    };
    Ok(Claim {
        credential: credential.into_owned(),
        signed_headers: signed_headers.into_owned(),
        signature: signature.into_owned(),
        date: date.into_owned(),
        http_date: false,
        expires_s,
        presigned: true,
    })
}

/// The values of header `name` (case-insensitive), in arrival order; `host` falls back to the
/// request's authority, and `:authority` is the authority.
fn header_values<'r>(
    request: &'r SignedRequest<'_>,
    name: &'r str,
) -> impl Iterator<Item = &'r [u8]> + 'r {
    let sent: Vec<&[u8]> = request
        .headers
        .iter()
        .filter(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
        .collect();
    let authority = (name == ":authority"
        || (name.eq_ignore_ascii_case("host") && sent.is_empty()))
    .then_some(request.authority)
    .flatten()
    .map(str::as_bytes);
    sent.into_iter().chain(authority)
}

/// The query string's parameters, names and values percent-decoded, in order.
fn parse_query(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// The first value of query parameter `name`, as text.
fn query_value<'q>(query: &'q [(Vec<u8>, Vec<u8>)], name: &str) -> Option<Cow<'q, str>> {
    query
        .iter()
        .find(|(key, _)| key == name.as_bytes())
        .map(|(_, value)| String::from_utf8_lossy(value))
}

/// Percent-decodes `text`; a `%` not followed by two hex digits stays as it is. `+` is a plus.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            if let (Some(high), Some(low)) = (
                bytes.get(index + 1).and_then(|byte| hex_value(*byte)),
                bytes.get(index + 2).and_then(|byte| hex_value(*byte)),
            ) {
                decoded.push(high << 4 | low);
                index += 3;
                continue;
            }
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    decoded
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// SigV4's URI encoding: every byte but the unreserved `A-Z a-z 0-9 - _ . ~` (and `/` when
/// `keep_slash`) as `%XX`, upper-case.
fn uri_encode(bytes: &[u8], keep_slash: bool, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(byte);
        } else {
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        }
    }
}

/// The canonical URI: an absolute path with `.` and `..` segments and empty segments removed
/// (RFC 3986 §5.2.4, as the SDKs normalize before signing), then URI-encoded as sent — so an
/// escape in the path is encoded a second time, as AWS does for every service but S3.
fn canonical_path(path: &str) -> Vec<u8> {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&segments.join("/"));
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if trailing && !normalized.ends_with('/') {
        normalized.push('/');
    }
    let mut out = Vec::with_capacity(normalized.len());
    uri_encode(normalized.as_bytes(), true, &mut out);
    out
}

/// A header value as SigV4 signs it: trimmed, runs of spaces and tabs as one space.
fn canonical_value(value: &[u8], out: &mut Vec<u8>) {
    let mut started = false;
    let mut pending_space = false;
    for &byte in value {
        if byte == b' ' || byte == b'\t' {
            pending_space = started;
            continue;
        }
        if pending_space {
            out.push(b' ');
            pending_space = false;
        }
        started = true;
        out.push(byte);
    }
}

/// Step 8's canonical request, as bytes.
fn canonical_request(
    request: &SignedRequest<'_>,
    query: &[(Vec<u8>, Vec<u8>)],
    signed_names: &[&str],
    signed_headers: &str,
    payload_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(request.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&canonical_path(request.path));
    out.push(b'\n');

    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .iter()
        .filter(|(name, _)| name.as_slice() != b"X-Amz-Signature")
        .map(|(name, value)| {
            let (mut encoded_name, mut encoded_value) = (Vec::new(), Vec::new());
            uri_encode(name, false, &mut encoded_name);
            uri_encode(value, false, &mut encoded_value);
            (encoded_name, encoded_value)
        })
        .collect();
    pairs.sort();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name);
        out.push(b'=');
        out.extend_from_slice(value);
    }
    out.push(b'\n');

    for name in signed_names {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let lowered = name.to_ascii_lowercase();
        for (index, value) in header_values(request, &lowered).enumerate() {
            if index > 0 {
                out.push(b',');
            }
            canonical_value(value, &mut out);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

/// `AWS4-HMAC-SHA256\n<stamp>\n<scope>\n<hex sha256(canonical request)>`.
fn string_to_sign(stamp: &str, scope: &str, canonical: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{stamp}\n{scope}\n{}",
        hex(&Sha256::digest(canonical))
    )
}

fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

fn hmac_of(key: &[u8], data: &str) -> [u8; 32] {
    let mut mac = hmac_sha256(key);
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The signing key: HMAC chain from `"AWS4" + secret` over date, region, service, terminator.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut seed = Vec::with_capacity(4 + secret.len());
    seed.extend_from_slice(b"AWS4");
    seed.extend_from_slice(secret.as_bytes());
    let key = hmac_of(&seed, date);
    let key = hmac_of(&key, region);
    let key = hmac_of(&key, service);
    hmac_of(&key, TERMINATOR)
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
    out
}

/// 64 lower- or upper-case hex digits as 32 bytes; anything else is `None` (and so a wrong
/// signature).
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    //! Vectors built for this module from the algorithm description with an independent signer
    //! (Python's `hmac`/`hashlib`, canonical request written out by hand), plus one request
    //! signed by AWS's own `aws-sigv4` crate. The independent signer reproduces the published
    //! SigV4 suite's `get-vanilla` signature, checked in [`primitives_reproduce_get_vanilla`].
    use super::*;
    use crate::error::ErrorKind;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2024-01-15T10:15:00Z.
    const SIGNED_MS: i64 = 1_705_313_700_000;
    const LIST_SIGNATURE: &str = "aee1eb3d39a729308632271dd4a94ecf861f956e64d6784e89caf8606b429b4e";

    #[derive(Debug)]
    struct Key(&'static str);

    impl SecretKey for Key {
        fn secret_access_key(&self) -> &str {
            self.0
        }
    }

    static KEY: Key = Key(SECRET);
    static WRONG: Key = Key("not-the-secret");

    fn known(id: &str) -> Option<&'static Key> {
        (id == AKID).then_some(&KEY)
    }

    fn authorization(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20240115/us-east-1/kinesis/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    /// A ListStreams as the SDKs send it, with the given Authorization header.
    fn list_headers(authorization: &str) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("host", b"127.0.0.1:4567".to_vec()),
            ("content-type", b"application/x-amz-json-1.1".to_vec()),
            ("x-amz-date", b"20240115T101500Z".to_vec()),
            ("x-amz-target", b"Kinesis_20131202.ListStreams".to_vec()),
            ("authorization", authorization.as_bytes().to_vec()),
        ]
    }

    fn list_authorization() -> String {
        authorization("content-type;host;x-amz-date;x-amz-target", LIST_SIGNATURE)
    }

    fn run(
        headers: &[(&str, Vec<u8>)],
        query: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Verified<'static, Key>, KinesisError> {
        run_with(headers, query, None, body, now_ms, known)
    }

    fn run_with(
        headers: &[(&str, Vec<u8>)],
        query: &str,
        authority: Option<&str>,
        body: &[u8],
        now_ms: i64,
        lookup: fn(&str) -> Option<&'static Key>,
    ) -> Result<Verified<'static, Key>, KinesisError> {
        let pairs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_slice()))
            .collect();
        let request = SignedRequest {
            method: "POST",
            path: "/",
            query,
            authority,
            headers: &pairs,
            body,
        };
        verify(&request, now_ms, lookup)
    }

    fn refused(result: Result<Verified<'static, Key>, KinesisError>) -> KinesisError {
        match result {
            Ok(verified) => panic!("expected a refusal, verified {verified:?}"),
            Err(error) => error,
        }
    }

    fn assert_invalid_signature(result: Result<Verified<'static, Key>, KinesisError>) {
        let error = refused(result);
        assert_eq!(error.kind, ErrorKind::InvalidSignatureException);
        assert_eq!(error.message, KinesisError::invalid_signature().message);
    }

    #[test]
    fn primitives_reproduce_get_vanilla() {
        // The suite's simplest request, service `service`: GET / with host and x-amz-date.
        let headers: [(&str, &[u8]); 2] = [
            ("Host", b"example.amazonaws.com"),
            ("X-Amz-Date", b"20150830T123600Z"),
        ];
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: "",
            authority: None,
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(
            &request,
            &[],
            &["host", "x-amz-date"],
            "host;x-amz-date",
            &hex(&Sha256::digest(b"")),
        );
        assert_eq!(
            String::from_utf8(canonical.clone()).unwrap(),
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let to_sign = string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
            &canonical,
        );
        let key = signing_key(SECRET, "20150830", "us-east-1", "service");
        let mut mac = hmac_sha256(&key);
        mac.update(to_sign.as_bytes());
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn a_signed_list_streams_verifies_within_the_skew() {
        let headers = list_headers(&list_authorization());
        for now in [
            SIGNED_MS,
            SIGNED_MS + CLOCK_SKEW_MS,
            SIGNED_MS - CLOCK_SKEW_MS,
        ] {
            let verified = run(&headers, "", b"{}", now).expect("a good signature verifies");
            assert_eq!(verified.access_key_id, AKID);
            assert_eq!(verified.region, "us-east-1");
            assert_eq!(verified.signed_at_ms, SIGNED_MS);
            assert!(!verified.presigned);
            assert!(std::ptr::eq(verified.key, &KEY));
        }
    }

    #[test]
    fn http2_requests_sign_the_authority_as_host() {
        let mut headers = list_headers(&list_authorization());
        headers.retain(|(name, _)| *name != "host");
        let verified = run_with(
            &headers,
            "",
            Some("127.0.0.1:4567"),
            b"{}",
            SIGNED_MS,
            known,
        );
        assert!(verified.is_ok(), "{verified:?}");
        // Without either, the host line is empty and the signature does not match.
        assert_invalid_signature(run(&headers, "", b"{}", SIGNED_MS));
    }

    #[test]
    fn header_values_are_folded_and_the_query_sorted() {
        let headers = vec![
            ("Host", b"kinesis.eu-west-1.amazonaws.com".to_vec()),
            ("X-Amz-Date", b"20240229T235959Z".to_vec()),
            ("X-Amz-Target", b"Kinesis_20131202.PutRecord".to_vec()),
            ("my-header", b"  a   b  ".to_vec()),
            ("My-Header", b"c\t d".to_vec()),
            (
                "Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240229/eu-west-1/kinesis/aws4_request, \
                  SignedHeaders=host;my-header;x-amz-date;x-amz-target, \
                  Signature=301edbc2479fae9712a4b5a287ed0903dc9b8242d5d87502ae8d08cc8c3e87c8"
                    .to_vec(),
            ),
        ];
        let body = br#"{"StreamName":"s","PartitionKey":"k","Data":"aGk="}"#;
        let verified = run(&headers, "b=2&a=x%20y&a=1&c", body, 1_709_251_199_000)
            .expect("folded headers and a sorted query verify");
        assert_eq!(
            verified.region, "eu-west-1",
            "any region is accepted and reported"
        );
        // Reordering the query changes nothing; changing a value does.
        assert!(run(&headers, "c=&a=1&b=2&a=x%20y", body, 1_709_251_199_000).is_ok());
        assert_invalid_signature(run(&headers, "b=3&a=x%20y&a=1&c", body, 1_709_251_199_000));
    }

    #[test]
    fn an_http_date_can_stand_in_for_x_amz_date() {
        let headers = vec![
            ("host", b"127.0.0.1:4567".to_vec()),
            ("date", b"Mon, 15 Jan 2024 10:15:00 GMT".to_vec()),
            ("x-amz-target", b"Kinesis_20131202.ListStreams".to_vec()),
            (
                "authorization",
                authorization(
                    "date;host;x-amz-target",
                    "fab90de4c53aa6bf11e2efe46da67c665d17d419e0b82de29c0611c3e4dd9dc1",
                )
                .into_bytes(),
            ),
        ];
        assert!(run(&headers, "", b"{}", SIGNED_MS).is_ok());
    }

    #[test]
    fn the_presigned_query_form_verifies_until_it_expires() {
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
            &X-Amz-Credential=AKIDEXAMPLE%2F20240115%2Fus-east-1%2Fkinesis%2Faws4_request\
            &X-Amz-Date=20240115T101500Z&X-Amz-Expires=300\
            &X-Amz-SignedHeaders=host%3Bx-amz-target\
            &X-Amz-Signature=d2c15e6f8a8fcdd28fae96c99b8e92fd57514d62c563ccf70abb4c9aab9fc54a";
        let headers = vec![
            ("host", b"127.0.0.1:4567".to_vec()),
            ("x-amz-target", b"Kinesis_20131202.ListStreams".to_vec()),
        ];
        let verified = run(&headers, query, b"{}", SIGNED_MS + 300_000).expect("presigned");
        assert!(verified.presigned);
        assert_eq!(verified.access_key_id, AKID);
        let late = refused(run(&headers, query, b"{}", SIGNED_MS + 301_000));
        assert_eq!(late.kind, ErrorKind::InvalidSignatureException);
        assert_eq!(
            late.message.as_deref(),
            Some(
                "Signature expired: 20240115T101500Z is now earlier than 20240115T101501Z \
                 (20240115T102001Z - 300 sec. of X-Amz-Expires)"
            )
        );
        let early = refused(run(
            &headers,
            query,
            b"{}",
            SIGNED_MS - CLOCK_SKEW_MS - 1000,
        ));
        assert!(early
            .message
            .as_deref()
            .unwrap()
            .starts_with("Signature not yet current: 20240115T101500Z is still later than"));
        assert_invalid_signature(run(&headers, query, b"{\"x\":1}", SIGNED_MS));
        let bad_expiry = query.replace("X-Amz-Expires=300", "X-Amz-Expires=604801");
        let error = refused(run(&headers, &bad_expiry, b"{}", SIGNED_MS));
        assert_eq!(error.kind, ErrorKind::IncompleteSignatureException);
    }

    #[test]
    fn a_wrong_secret_an_unknown_key_or_a_changed_request_is_refused() {
        let headers = list_headers(&list_authorization());
        assert_invalid_signature(run_with(&headers, "", None, b"{}", SIGNED_MS, |_| {
            Some(&WRONG)
        }));
        let unknown = refused(run_with(&headers, "", None, b"{}", SIGNED_MS, |_| None));
        assert_eq!(unknown.kind, ErrorKind::UnrecognizedClientException);
        assert_eq!(unknown.message, KinesisError::unrecognized_client().message);
        // One byte of the body, a signed header, the method, the path.
        assert_invalid_signature(run(&headers, "", b"{ }", SIGNED_MS));
        let mut retargeted = headers.clone();
        retargeted[3].1 = b"Kinesis_20131202.DeleteStream".to_vec();
        assert_invalid_signature(run(&retargeted, "", b"{}", SIGNED_MS));
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        for (method, path) in [("PUT", "/"), ("POST", "/x")] {
            let request = SignedRequest {
                method,
                path,
                query: "",
                authority: None,
                headers: &pairs,
                body: b"{}",
            };
            assert_eq!(
                verify(&request, SIGNED_MS, known).unwrap_err().kind,
                ErrorKind::InvalidSignatureException
            );
        }
        // A header nobody signed may be added or changed.
        let mut extra = headers.clone();
        extra.push(("user-agent", b"anything".to_vec()));
        assert!(run(&extra, "", b"{}", SIGNED_MS).is_ok());
        // Signatures of the wrong length or not hex.
        for signature in ["abc", &"g".repeat(64), &LIST_SIGNATURE[..63]] {
            let headers = list_headers(&authorization(
                "content-type;host;x-amz-date;x-amz-target",
                signature,
            ));
            assert_invalid_signature(run(&headers, "", b"{}", SIGNED_MS));
        }
    }

    #[test]
    fn dates_outside_the_skew_get_aws_texts() {
        let headers = list_headers(&list_authorization());
        let now = SIGNED_MS + CLOCK_SKEW_MS + 1000;
        let expired = refused(run(&headers, "", b"{}", now));
        assert_eq!(expired.kind, ErrorKind::InvalidSignatureException);
        assert_eq!(
            expired.message.as_deref(),
            Some(
                "Signature expired: 20240115T101500Z is now earlier than 20240115T101501Z \
                 (20240115T102001Z - 5 min.)"
            )
        );
        let now = SIGNED_MS - CLOCK_SKEW_MS - 1000;
        let early = refused(run(&headers, "", b"{}", now));
        assert_eq!(
            early.message.as_deref(),
            Some(
                "Signature not yet current: 20240115T101500Z is still later than \
                 20240115T101459Z (20240115T100959Z + 5 min.)"
            )
        );
        // The key is looked up before the date is judged: an unknown key is told as such.
        let unknown = refused(run_with(&headers, "", None, b"{}", now, |_| None));
        assert_eq!(unknown.kind, ErrorKind::UnrecognizedClientException);
    }

    #[test]
    fn payload_hash_header_is_honoured_but_must_be_true() {
        let mut headers = list_headers(&authorization(
            "content-type;host;x-amz-date;x-amz-target",
            "2f68f4c10fd197e9a70fc8d20a6354c9b2054506a119782c51001f5206eec20d",
        ));
        headers.push(("x-amz-content-sha256", UNSIGNED_PAYLOAD.as_bytes().to_vec()));
        assert!(run(&headers, "", b"{}", SIGNED_MS).is_ok());
        // UNSIGNED-PAYLOAD leaves the body out of the signature: that is what it means.
        assert!(run(&headers, "", b"{\"other\":1}", SIGNED_MS).is_ok());

        let body_hash = hex(&Sha256::digest(b"{}"));
        let mut headers = list_headers(&list_authorization());
        headers.push(("x-amz-content-sha256", body_hash.clone().into_bytes()));
        assert!(run(&headers, "", b"{}", SIGNED_MS).is_ok());
        let error = refused(run(&headers, "", b"{ }", SIGNED_MS));
        assert_eq!(error.message, KinesisError::payload_hash_mismatch().message);
        // Injecting UNSIGNED-PAYLOAD into a request signed over its body breaks the signature.
        let mut injected = list_headers(&list_authorization());
        injected.push(("x-amz-content-sha256", UNSIGNED_PAYLOAD.as_bytes().to_vec()));
        assert_invalid_signature(run(&injected, "", b"{}", SIGNED_MS));
    }

    #[test]
    fn both_forms_or_neither_are_refused() {
        let headers = list_headers(&list_authorization());
        let both = refused(run(
            &headers,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            b"{}",
            SIGNED_MS,
        ));
        assert_eq!(both.message, KinesisError::signature_both_forms().message);
        let mut none = headers.clone();
        none.retain(|(name, _)| *name != "authorization");
        let missing = refused(run(&none, "", b"{}", SIGNED_MS));
        assert_eq!(missing.kind, ErrorKind::MissingAuthenticationTokenException);
        // Other query parameters without X-Amz-Algorithm are not a signature either.
        let missing = refused(run(&none, "X-Amz-Credential=x", b"{}", SIGNED_MS));
        assert_eq!(missing.kind, ErrorKind::MissingAuthenticationTokenException);
    }

    #[test]
    fn incomplete_headers_and_queries_get_aws_texts() {
        let header =
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-east-1/kinesis/aws4_request";
        let headers = vec![("authorization", header.as_bytes().to_vec())];
        let error = refused(run(&headers, "", b"{}", SIGNED_MS));
        assert_eq!(error.kind, ErrorKind::IncompleteSignatureException);
        assert_eq!(
            error.message.as_deref(),
            Some(
                "Authorization header requires 'Signature' parameter. Authorization header \
                 requires 'SignedHeaders' parameter. Authorization header requires existence of \
                 either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 \
                 Credential=AKIDEXAMPLE/20240115/us-east-1/kinesis/aws4_request"
            )
        );
        // An empty value is a missing one; a bearer token is a part without `=`.
        let headers =
            list_headers("AWS4-HMAC-SHA256 Credential=, SignedHeaders=host, Signature=ab");
        let error = refused(run(&headers, "", b"{}", SIGNED_MS));
        assert!(error
            .message
            .as_deref()
            .unwrap()
            .starts_with("Authorization header requires 'Credential' parameter. Authorization="));
        let headers = list_headers("Bearer abc");
        let error = refused(run(&headers, "", b"{}", SIGNED_MS));
        assert_eq!(
            error.message.as_deref(),
            Some(
                "'abc' not a valid key=value pair (missing equal-sign) in Authorization header: \
                 'Bearer abc'."
            )
        );
        let spaced = list_authorization().replace("Credential=", "Credential= ");
        let error = refused(run(&list_headers(&spaced), "", b"{}", SIGNED_MS));
        assert!(error
            .message
            .as_deref()
            .unwrap()
            .starts_with("'AKIDEXAMPLE/20240115/us-east-1/kinesis/aws4_request' not a valid"));
        let other = list_authorization().replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256");
        let error = refused(run(&list_headers(&other), "", b"{}", SIGNED_MS));
        assert_eq!(error.kind, ErrorKind::IncompleteSignatureException);

        let error = refused(run(
            &[],
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=",
            b"",
            0,
        ));
        assert_eq!(
            error.message.as_deref(),
            Some(
                "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string \
                 parameters must include 'X-Amz-Signature'. AWS query-string parameters must \
                 include 'X-Amz-SignedHeaders'. AWS query-string parameters must include \
                 'X-Amz-Date'. Re-examine the query-string parameters."
            )
        );
    }

    #[test]
    fn the_credential_scope_is_checked() {
        let with_credential = |credential: &str| {
            list_headers(&list_authorization().replace(
                "AKIDEXAMPLE/20240115/us-east-1/kinesis/aws4_request",
                credential,
            ))
        };
        let cases = [
            (
                "AKID/EXAMPLE/20240115/us-east-1/kinesis/aws4_request",
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got \
                 'AKID/EXAMPLE/20240115/us-east-1/kinesis/aws4_request'",
            ),
            (
                "AKIDEXAMPLE/20240114/us-east-1/kinesis/aws4_request",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '20240114' != '20240115', from '20240115T101500Z'.",
            ),
            (
                "AKIDEXAMPLE/20240115/us-east-1/s3/aws4_request",
                "Credential should be scoped to correct service: 'kinesis'. ",
            ),
            (
                "AKIDEXAMPLE/20240115/us-east-1/kinesis/aws5_request",
                "Credential should be scoped with a valid terminator: 'aws4_request', not \
                 'aws5_request'. ",
            ),
            (
                "AKIDEXAMPLE/20240115//kinesis/aws4_request",
                "Credential should be scoped to a valid region, not ''. ",
            ),
        ];
        for (credential, message) in cases {
            let error = refused(run(&with_credential(credential), "", b"{}", SIGNED_MS));
            assert_eq!(error.message.as_deref(), Some(message), "{credential}");
        }
        // A region other than the server's is fine (and its signature then differs).
        assert_invalid_signature(run(
            &with_credential("AKIDEXAMPLE/20240115/eu-west-1/kinesis/aws4_request"),
            "",
            b"{}",
            SIGNED_MS,
        ));
    }

    #[test]
    fn host_must_be_signed_and_dates_must_parse() {
        let headers = list_headers(&authorization(
            "content-type;x-amz-date;x-amz-target",
            LIST_SIGNATURE,
        ));
        let error = refused(run(&headers, "", b"{}", SIGNED_MS));
        assert_eq!(error.message, KinesisError::host_not_signed().message);
        let mut headers = list_headers(&list_authorization());
        headers[2].1 = b"2024-01-15T10:15:00Z".to_vec();
        let error = refused(run(&headers, "", b"{}", SIGNED_MS));
        assert_eq!(error.kind, ErrorKind::IncompleteSignatureException);
        assert_eq!(
            error.message.as_deref(),
            Some(
                "Date must be in ISO-8601 'basic format'. Got '2024-01-15T10:15:00Z'. See \
                 http://en.wikipedia.org/wiki/ISO_8601"
            )
        );
    }

    #[test]
    fn the_claimed_key_id_needs_no_signature() {
        let pairs: Vec<(&str, &[u8])> = vec![(
            "authorization",
            b"AWS4-HMAC-SHA256 Credential=123456789012/x",
        )];
        let mut request = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            authority: None,
            headers: &pairs,
            body: b"",
        };
        assert_eq!(
            claimed_access_key_id(&request).as_deref(),
            Some("123456789012")
        );
        request.headers = &[];
        request.query = "X-Amz-Credential=AKQ%2F20240115%2Fus-east-1";
        assert_eq!(claimed_access_key_id(&request).as_deref(), Some("AKQ"));
        request.query = "";
        assert_eq!(claimed_access_key_id(&request), None);
    }

    #[test]
    fn paths_are_normalized_then_encoded_again() {
        let path = |raw: &str| String::from_utf8(canonical_path(raw)).unwrap();
        assert_eq!(path(""), "/");
        assert_eq!(path("/"), "/");
        assert_eq!(path("/a/./b/../c//d%20e"), "/a/c/d%2520e");
        assert_eq!(path("/a/b/.."), "/a/");
        assert_eq!(path("/../x"), "/x");
        assert_eq!(path("/~user/ü"), "/~user/%C3%BC");
    }

    #[test]
    fn requests_signed_by_the_aws_sigv4_crate_verify() {
        use aws_credential_types::Credentials;
        use aws_sigv4::http_request::{
            sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        };
        use aws_sigv4::sign::v4;

        let body = br#"{"StreamName":"orders","PartitionKey":"k","Data":"aGk="}"#;
        let signed_at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(SIGNED_MS as u64);
        let identity = Credentials::new(AKID, SECRET, Some("session".into()), None, "test").into();
        for location in [SignatureLocation::Headers, SignatureLocation::QueryParams] {
            let mut settings = SigningSettings::default();
            settings.signature_location = location;
            if location == SignatureLocation::QueryParams {
                settings.expires_in = Some(std::time::Duration::from_secs(300));
            }
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region("ap-southeast-2")
                .name("kinesis")
                .time(signed_at)
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let headers = [
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "Kinesis_20131202.PutRecord"),
                ("host", "localhost:4567"),
            ];
            let signable = SignableRequest::new(
                "POST",
                "http://localhost:4567/",
                headers.iter().copied(),
                SignableBody::Bytes(body),
            )
            .unwrap();
            let (instructions, _) = sign(signable, &params).unwrap().into_parts();
            let mut request = http::Request::builder()
                .method("POST")
                .uri("http://localhost:4567/");
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let mut request = request.body(()).unwrap();
            instructions.apply_to_request_http1x(&mut request);

            let pairs: Vec<(&str, &[u8])> = request
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes()))
                .collect();
            let signed = SignedRequest {
                method: "POST",
                path: request.uri().path(),
                query: request.uri().query().unwrap_or_default(),
                authority: None,
                headers: &pairs,
                body,
            };
            let verified = verify(&signed, SIGNED_MS + 1000, known)
                .unwrap_or_else(|error| panic!("{location:?}: {error}"));
            assert_eq!(verified.region, "ap-southeast-2");
            assert_eq!(
                verified.presigned,
                location == SignatureLocation::QueryParams
            );
            let tampered = SignedRequest {
                body: br#"{"StreamName":"orders","PartitionKey":"k","Data":"aGo="}"#,
                ..signed
            };
            assert_eq!(
                verify(&tampered, SIGNED_MS + 1000, known).unwrap_err().kind,
                ErrorKind::InvalidSignatureException,
                "{location:?}"
            );
        }
    }
}
