//! `riffle dev-cert`: a local certificate authority and a TLS server certificate for
//! `localhost`, `127.0.0.1` and `::1`, so that clients that insist on TLS (the KPL, KCL, Java
//! SDK clients that negotiate HTTP/2 by ALPN) can be pointed at riffle by trusting one file,
//! `ca.pem`.
//!
//! Files written into `--out DIR`:
//!
//! | file | what | mode |
//! |---|---|---|
//! | `ca.pem` | the CA certificate: the one file clients trust | 0644 |
//! | `ca-key.pem` | the CA's private key (PKCS#8) | 0600 |
//! | `cert.pem` | the server certificate, then the CA certificate (the chain) | 0644 |
//! | `key.pem` | the server's private key (PKCS#8) | 0600 |
//!
//! **The CA survives re-runs.** If `ca.pem` and `ca-key.pem` exist, they are checked (the key
//! must be the certificate's, the subject the one this command writes) and reused, so a CA
//! already imported into trust stores stays valid; only the server certificate and key are
//! made anew, and the output says that it replaced them. A CA half present, or not made by
//! this command, is an error: nothing is overwritten.
//!
//! Keys are ECDSA P-256 (every TLS client supports it). The server certificate is valid for
//! [`SERVER_VALIDITY_DAYS`], the most that Apple platforms accept for a certificate under a
//! user-installed root; the CA for ten years.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

/// `riffle dev-cert` arguments.
#[derive(clap::Args)]
pub struct DevCertArgs {
    /// Directory for ca.pem, ca-key.pem, cert.pem and key.pem (created if missing). An
    /// existing CA in it is reused.
    #[arg(long, default_value = "./riffle-dev-cert")]
    out: PathBuf,
}

const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
/// The CA's subject. Reusing a CA rebuilds its issuer name from these, so they never change.
const CA_COMMON_NAME: &str = "riffle development CA";
const ORGANIZATION: &str = "riffle dev-cert";
const CA_VALIDITY_DAYS: i64 = 3650;
/// 825 days: the longest validity Apple platforms accept for a TLS server certificate
/// (others accept more).
pub const SERVER_VALIDITY_DAYS: i64 = 825;
/// Certificates start a day in the past, so a client whose clock is a little behind still
/// accepts them.
const BACKDATE_DAYS: i64 = 1;
/// Names the server certificate is valid for.
const SERVER_DNS_NAME: &str = "localhost";
const SERVER_IPS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// Runs `riffle dev-cert`: writes the files and prints how to use them.
pub fn run(args: DevCertArgs) -> ExitCode {
    match write_dev_cert(&args.out) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("riffle dev-cert: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Writes (or reuses) the CA and writes a new server certificate in `dir`; returns the text
/// to show the user.
fn write_dev_cert(dir: &Path) -> Result<String, String> {
    fs::create_dir_all(dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let dir = fs::canonicalize(dir)
        .map_err(|error| format!("cannot resolve {}: {error}", dir.display()))?;
    let mut report = String::new();

    let now = OffsetDateTime::now_utc();
    let (issuer, ca_pem, reused) = load_or_make_ca(&dir, now)?;
    let ca_path = dir.join(CA_CERT_FILE);
    if reused {
        let _ = writeln!(
            report,
            "Reusing the CA in {} (clients that trust it keep working).",
            ca_path.display()
        );
    } else {
        let _ = writeln!(
            report,
            "Made a new CA: {} (and its key, {}).",
            ca_path.display(),
            dir.join(CA_KEY_FILE).display()
        );
    }

    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let replacing: Vec<&str> = [CERT_FILE, KEY_FILE]
        .into_iter()
        .filter(|name| dir.join(name).exists())
        .collect();
    let not_after = now + Duration::days(SERVER_VALIDITY_DAYS);
    let server_key = KeyPair::generate().map_err(|error| format!("key generation: {error}"))?;
    let server_cert = server_params(now, not_after)?
        .signed_by(&server_key, &issuer)
        .map_err(|error| format!("signing the server certificate: {error}"))?;
    let chain = format!("{}{}\n", server_cert.pem(), ca_pem.trim_end());
    write_atomically(&key_path, server_key.serialize_pem().as_bytes(), true)?;
    write_atomically(&cert_path, chain.as_bytes(), false)?;
    if !replacing.is_empty() {
        let _ = writeln!(
            report,
            "Replaced the previous {} in {}.",
            replacing.join(" and "),
            dir.display()
        );
    }
    let _ = writeln!(
        report,
        "Wrote {} (with the CA in the chain) and {}: for {SERVER_DNS_NAME}, 127.0.0.1 and ::1, \
         valid until {}.",
        cert_path.display(),
        key_path.display(),
        not_after.date()
    );
    report.push_str(&usage(&ca_path, &cert_path, &key_path));
    Ok(report)
}

/// The CA as an issuer, its certificate's PEM text, and whether it was already there.
fn load_or_make_ca(
    dir: &Path,
    now: OffsetDateTime,
) -> Result<(Issuer<'static, KeyPair>, String, bool), String> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let cert_pem = read_text(&cert_path)?;
            let key = KeyPair::from_pem(&read_text(&key_path)?).map_err(|error| {
                format!("{}: not a usable private key: {error}", key_path.display())
            })?;
            let params = ca_params(now);
            // Same subject and same key as a CA this command would make from that key: then
            // the issuer rebuilt from `params` names it exactly, and its signatures verify.
            let rebuilt = params
                .self_signed(&key)
                .map_err(|error| format!("checking the CA: {error}"))?;
            let matches = subject_and_key(&cert_pem, &cert_path)? == anchor_of(rebuilt.der())?;
            if !matches {
                return Err(format!(
                    "{} and {} are not a CA made by `riffle dev-cert` from that key (subject or \
                     public key differ); refusing to touch them. Move both away to make a new \
                     CA, or choose another --out.",
                    cert_path.display(),
                    key_path.display()
                ));
            }
            Ok((Issuer::new(params, key), cert_pem, true))
        }
        (false, false) => {
            let key = KeyPair::generate().map_err(|error| format!("key generation: {error}"))?;
            let params = ca_params(now);
            let cert = params
                .self_signed(&key)
                .map_err(|error| format!("making the CA: {error}"))?;
            write_atomically(&key_path, key.serialize_pem().as_bytes(), true)?;
            write_atomically(&cert_path, cert.pem().as_bytes(), false)?;
            Ok((Issuer::new(params, key), cert.pem(), false))
        }
        (cert_exists, _) => {
            let (present, missing) = if cert_exists {
                (&cert_path, &key_path)
            } else {
                (&key_path, &cert_path)
            };
            Err(format!(
                "{} exists but {} does not; refusing to overwrite half a CA. Restore the \
                 missing file, or move {} away to make a new CA.",
                present.display(),
                missing.display(),
                present.display()
            ))
        }
    }
}

fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    name.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(BACKDATE_DAYS);
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    params
}

fn server_params(
    now: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, SERVER_DNS_NAME);
    name.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = name;
    let dns = SERVER_DNS_NAME
        .try_into()
        .map_err(|error| format!("server name: {error}"))?;
    params.subject_alt_names = vec![SanType::DnsName(dns)];
    params
        .subject_alt_names
        .extend(SERVER_IPS.iter().map(|ip| SanType::IpAddress(*ip)));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::days(BACKDATE_DAYS);
    params.not_after = not_after;
    Ok(params)
}

/// The subject and public key of the first certificate in a PEM file.
fn subject_and_key(pem: &str, path: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let cert = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| format!("{}: no PEM certificate in the file", path.display()))?
        .map_err(|error| format!("{}: not a PEM certificate: {error}", path.display()))?;
    anchor_of(&cert).map_err(|error| format!("{}: {error}", path.display()))
}

/// The subject and public key of a certificate, as a trust store reads them.
fn anchor_of(cert: &CertificateDer<'_>) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut store = rustls::RootCertStore::empty();
    store
        .add(cert.clone())
        .map_err(|error| format!("not a usable CA certificate: {error}"))?;
    let anchor = store
        .roots
        .first()
        .ok_or_else(|| "not a usable CA certificate".to_owned())?;
    Ok((
        anchor.subject.as_ref().to_vec(),
        anchor.subject_public_key_info.as_ref().to_vec(),
    ))
}

fn read_text(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
}

/// Writes `contents` to `path` through a temporary file renamed over it, so a reader never
/// sees half a file; `private` files are created readable by their owner only (0600).
fn write_atomically(path: &Path, contents: &[u8], private: bool) -> Result<(), String> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    let _ = fs::remove_file(&temp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let result = written.and_then(|()| fs::rename(&temp, path));
    if let Err(error) = result {
        let _ = fs::remove_file(&temp);
        return Err(format!("cannot write {}: {error}", path.display()));
    }
    Ok(())
}

/// What to do next: the serve flags, and how each kind of client trusts the CA.
fn usage(ca: &Path, cert: &Path, key: &Path) -> String {
    let (ca, cert, key) = (ca.display(), cert.display(), key.display());
    format!(
        "
Serve TLS (HTTP/1.1 and HTTP/2 by ALPN, on one port):
  riffle serve --tls-cert {cert} --tls-key {key}

Then use https://localhost:4567 (or https://127.0.0.1:4567) and trust {ca}
(only that file; keep ca-key.pem and key.pem private):
  AWS CLI   aws --endpoint-url https://localhost:4567 --ca-bundle {ca} kinesis list-streams
            or: export AWS_CA_BUNDLE={ca}   (also read by boto3 and other SDKs)
  boto3     boto3.client(\"kinesis\", endpoint_url=\"https://localhost:4567\", verify=\"{ca}\")
  Java      keytool -importcert -noprompt -alias riffle-dev-ca -file {ca} \\
              -keystore riffle-truststore.p12 -storetype PKCS12 -storepass changeit
            java -Djavax.net.ssl.trustStore=riffle-truststore.p12 \\
              -Djavax.net.ssl.trustStorePassword=changeit ...   (KCL, Java SDK v1 and v2)
  KPL       KinesisProducerConfiguration.setCaCertFile(\"{ca}\") for its native daemon
  Node.js   export NODE_EXTRA_CA_CERTS={ca}
"
    )
}
