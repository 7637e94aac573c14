//! Reaching a Kinesis endpoint: the flags every client command shares, the SDK client built
//! from them, and the translation of SDK errors into one line a person can act on.
//!
//! Credentials and region follow the standard AWS chain, with two departures made for a
//! riffle on this machine, the default endpoint:
//! - For a loopback endpoint the chain stops before the EC2 instance metadata service: a
//!   laptop has none, and probing it costs seconds (and sends packets off the machine) on
//!   every command. Remote endpoints get the full default chain.
//! - When the chain finds no credentials at all, requests are signed with a placeholder key
//!   (`riffle`/`riffle`) and the region defaults to us-east-1, which a riffle without
//!   `--credentials` accepts. A server that then refuses the signature gets a hint saying so.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{
    BehaviorVersion, Credentials, ProvideCredentials, Region, SharedCredentialsProvider,
    SharedHttpClient,
};
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::Client;
use aws_smithy_http_client::tls;

use super::{CliError, CliResult};

/// The endpoint of a `riffle serve` with its default `--listen`.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4567";
/// The region used when neither a flag, the environment nor a profile names one.
const FALLBACK_REGION: &str = "us-east-1";
/// The placeholder access key (and secret) used when the chain finds no credentials.
const PLACEHOLDER_KEY: &str = "riffle";
/// Attempts per call for errors the SDK deems retriable (throttling, 5xx, connection resets).
const ATTEMPTS_MAX: u32 = 4;
/// Error codes of a refused signature or caller: with placeholder credentials, a hint follows.
const AUTH_ERROR_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "AccessDeniedException",
    "ExpiredTokenException",
];

#[derive(clap::Args, Clone, Debug)]
pub struct ConnectArgs {
    /// The Kinesis endpoint: a riffle server's URL (`host:port` means http://host:port), or
    /// `aws` for AWS's endpoint of the region.
    #[arg(long, env = "RIFFLE_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// The region to sign for (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, else
    /// us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// The profile of ~/.aws/config and ~/.aws/credentials to take credentials and region
    /// from (default: AWS_PROFILE, else `default`).
    #[arg(long)]
    pub profile: Option<String>,
    /// A PEM file of certificate authorities to trust, besides the system's, for an https://
    /// endpoint (e.g. riffle-dev-cert/ca.pem).
    #[arg(long, env = "AWS_CA_BUNDLE", value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
}

/// A client for one endpoint, and what is needed to explain its errors.
pub struct Connection {
    pub client: Client,
    /// The endpoint as the user knows it (`AWS (us-east-1)` for `--endpoint aws`).
    endpoint_label: String,
    /// Whether the endpoint is the default one (a hint about `riffle serve` then helps).
    default_endpoint: bool,
    /// Whether requests are signed with the placeholder key.
    placeholder_credentials: bool,
}

impl Connection {
    /// Builds the client: resolves the endpoint, the region and the credentials (once, now, so
    /// that a broken profile is reported before anything is sent).
    pub async fn open(args: &ConnectArgs) -> CliResult<Connection> {
        let endpoint = Endpoint::parse(&args.endpoint)?;
        let http_client = http_client(args.ca_bundle.as_ref())?;
        let local = endpoint.is_loopback();
        let provider_config = ProviderConfig::default()
            .with_http_client(http_client.clone())
            .with_behavior_version(Some(BehaviorVersion::latest()));

        let region = resolve_region(args, &provider_config, local).await;
        let provider_config = provider_config.with_region(Some(region.clone()));
        let (credentials, placeholder_credentials) =
            resolve_credentials(args, &provider_config, local).await?;

        let mut config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region.clone())
            .credentials_provider(credentials)
            .http_client(http_client)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(ATTEMPTS_MAX)
                    .with_initial_backoff(Duration::from_millis(100)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        let endpoint_label = match &endpoint {
            Endpoint::Url(url) => {
                config = config.endpoint_url(url);
                url.clone()
            }
            Endpoint::Aws => format!("AWS ({region})"),
        };
        Ok(Connection {
            client: Client::from_conf(config.build()),
            endpoint_label,
            default_endpoint: args.endpoint == DEFAULT_ENDPOINT,
            placeholder_credentials,
        })
    }

    /// One line saying why a call failed: the service's error code and message, or why the
    /// endpoint could not be reached, with a hint where one helps.
    pub fn error<E, R>(&self, error: SdkError<E, R>) -> CliError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + 'static,
    {
        let endpoint = &self.endpoint_label;
        match &error {
            SdkError::ServiceError(context) => {
                let service_error = context.err();
                let code = service_error.code().unwrap_or("UnknownError");
                let mut text = match service_error.message() {
                    Some(message) if !message.is_empty() => format!("{code}: {message}"),
                    _ => code.to_owned(),
                };
                if self.placeholder_credentials && AUTH_ERROR_CODES.contains(&code) {
                    text.push_str(
                        " (no AWS credentials were found, so riffle signed with a placeholder \
                         key; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --profile)",
                    );
                }
                CliError::new(text)
            }
            SdkError::DispatchFailure(_) => {
                let mut text = format!("cannot reach {endpoint}: {}", innermost_cause(&error));
                if self.default_endpoint {
                    text.push_str(
                        " (is `riffle serve` running? Point --endpoint or RIFFLE_ENDPOINT at \
                         your server)",
                    );
                }
                CliError::new(text)
            }
            SdkError::TimeoutError(_) => {
                CliError::new(format!("{endpoint} did not answer in time"))
            }
            SdkError::ResponseError(_) => CliError::new(format!(
                "the answer from {endpoint} could not be read: {}",
                DisplayErrorContext(&error)
            )),
            _ => CliError::new(format!("{}", DisplayErrorContext(&error))),
        }
    }
}

/// The deepest `source()` of an error: for a refused connection, "Connection refused (os
/// error 111)" rather than four layers of wrappers.
fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Where requests go.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    /// An explicit URL (riffle, or any Kinesis-compatible service).
    Url(String),
    /// AWS's endpoint for the region, resolved by the SDK.
    Aws,
}

impl Endpoint {
    fn parse(text: &str) -> CliResult<Endpoint> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("aws") {
            return Ok(Endpoint::Aws);
        }
        let url = if text.starts_with("http://") || text.starts_with("https://") {
            text.to_owned()
        } else if text.contains("://") {
            return Err(CliError::new(format!(
                "--endpoint {text}: only http:// and https:// endpoints are supported"
            )));
        } else {
            format!("http://{text}")
        };
        if Endpoint::host_of(&url).is_empty() {
            return Err(CliError::new(format!("--endpoint {text}: no host in it")));
        }
        Ok(Endpoint::Url(url.trim_end_matches('/').to_owned()))
    }

    /// The host of a `scheme://[user@]host[:port][/path]` URL, without brackets for IPv6.
    fn host_of(url: &str) -> &str {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        if let Some(bracketed) = host_port.strip_prefix('[') {
            return bracketed.split(']').next().unwrap_or("");
        }
        host_port.split(':').next().unwrap_or("")
    }

    /// Whether the endpoint is on this machine (a loopback address or `localhost`).
    fn is_loopback(&self) -> bool {
        let Endpoint::Url(url) = self else {
            return false;
        };
        let host = Endpoint::host_of(url).to_ascii_lowercase();
        host == "localhost"
            || host.ends_with(".localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// The SDK's own HTTP client (hyper and rustls), with the ring provider riffle already builds,
/// trusting the system's certificate authorities and those of `--ca-bundle`.
fn http_client(ca_bundle: Option<&PathBuf>) -> CliResult<SharedHttpClient> {
    let mut trust_store = tls::TrustStore::default().with_native_roots(true);
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|error| {
            CliError::new(format!(
                "cannot read --ca-bundle {}: {error}",
                path.display()
            ))
        })?;
        trust_store = trust_store.with_pem_certificate(pem);
    }
    let context = tls::TlsContext::builder()
        .with_trust_store(trust_store)
        .build()
        .map_err(|error| CliError::new(format!("cannot use the CA bundle: {error}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(context)
        .build_https())
}

/// `--region`, else the environment, else the profile, else (remote endpoints only) the
/// instance metadata service, else us-east-1.
async fn resolve_region(args: &ConnectArgs, config: &ProviderConfig, local: bool) -> Region {
    let mut profile = ProfileFileRegionProvider::builder().configure(config);
    if let Some(name) = &args.profile {
        profile = profile.profile_name(name);
    }
    let mut chain = RegionProviderChain::first_try(args.region.clone().map(Region::new))
        .or_else(EnvironmentVariableRegionProvider::new())
        .or_else(profile.build());
    if !local {
        chain = chain.or_else(ImdsRegionProvider::builder().configure(config).build());
    }
    chain
        .region()
        .await
        .unwrap_or_else(|| Region::new(FALLBACK_REGION))
}

/// The credential chain, tried once now. Returns the provider and whether it is the
/// placeholder (the chain found nothing).
async fn resolve_credentials(
    args: &ConnectArgs,
    config: &ProviderConfig,
    local: bool,
) -> CliResult<(SharedCredentialsProvider, bool)> {
    let mut profile = ProfileFileCredentialsProvider::builder().configure(config);
    if let Some(name) = &args.profile {
        profile = profile.profile_name(name);
    }
    let mut chain = CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else("Profile", profile.build())
    .or_else(
        "WebIdentityToken",
        WebIdentityTokenCredentialsProvider::builder()
            .configure(config)
            .build(),
    )
    .or_else(
        "EcsContainer",
        EcsCredentialsProvider::builder().configure(config).build(),
    );
    if !local {
        chain = chain.or_else(
            "Ec2InstanceMetadata",
            aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                .configure(config)
                .build(),
        );
    }
    match chain.provide_credentials().await {
        Ok(_) => Ok((SharedCredentialsProvider::new(chain), false)),
        Err(CredentialsError::CredentialsNotLoaded(_)) if args.profile.is_none() => {
            let placeholder = Credentials::new(
                PLACEHOLDER_KEY,
                PLACEHOLDER_KEY,
                None,
                None,
                "riffle-placeholder",
            );
            Ok((SharedCredentialsProvider::new(placeholder), true))
        }
        Err(error) => Err(CliError::new(format!(
            "cannot load AWS credentials: {}",
            DisplayErrorContext(&error)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_or_without_a_scheme() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:4567/").unwrap(),
            Endpoint::Url("http://127.0.0.1:4567".into())
        );
        assert_eq!(
            Endpoint::parse("localhost:9000").unwrap(),
            Endpoint::Url("http://localhost:9000".into())
        );
        assert_eq!(Endpoint::parse("AWS").unwrap(), Endpoint::Aws);
        assert!(Endpoint::parse("ftp://example.com").is_err());
        assert!(Endpoint::parse("http://").is_err());
    }

    #[test]
    fn loopback_endpoints_are_recognised() {
        for local in [
            "http://127.0.0.1:4567",
            "http://127.8.9.10",
            "https://localhost:4567",
            "http://[::1]:4567",
            "http://user@LOCALHOST:1/path",
            "http://riffle.localhost",
        ] {
            assert!(Endpoint::parse(local).unwrap().is_loopback(), "{local}");
        }
        for remote in [
            "https://kinesis.us-east-1.amazonaws.com",
            "http://192.168.1.5:4567",
            "http://[2001:db8::1]:4567",
            "http://localhost.example.com",
            "aws",
        ] {
            assert!(!Endpoint::parse(remote).unwrap().is_loopback(), "{remote}");
        }
    }
}
