//! `riffle serve --s3-endpoint URL`: channels write their objects to an S3-compatible service
//! (AWS S3, MinIO, Ceph, ...) through the AWS SDK's S3 client, with the standard credential
//! and region chain (environment, profile, web identity, container, instance metadata).
//!
//! Path-style addressing (`URL/bucket/key`), which every S3-compatible server takes; request
//! checksums only where S3 requires them, since several S3-compatible servers refuse the
//! SDK's newer default (trailing checksums in aws-chunked bodies).

use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
use aws_smithy_http_client::tls;
use riffle_core::delivery::{ObjectStore, PutObject, StoreError, StoreFuture};

/// Error codes that retrying alone cannot fix: the channel shows FAILED while they last.
const PERMANENT_CODES: &[&str] = &[
    "NoSuchBucket",
    "AccessDenied",
    "InvalidBucketName",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "KMS.NotFoundException",
    "InvalidArgument",
    "PermanentRedirect",
];

pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    /// A client for `endpoint`, its region and credentials from the standard chain (region
    /// us-east-1 when the chain names none).
    pub async fn connect(endpoint: &str) -> S3Store {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .load()
            .await;
        let region = shared
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new("us-east-1"));
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .region(region)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        S3Store {
            client: aws_sdk_s3::Client::from_conf(config),
        }
    }
}

impl ObjectStore for S3Store {
    fn put(&self, object: PutObject) -> StoreFuture<'_> {
        Box::pin(async move {
            let mut request = self
                .client
                .put_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .content_type(object.content_type)
                .expected_bucket_owner(&object.expected_bucket_owner)
                .body(ByteStream::from(object.body));
            if let Some(encoding) = object.content_encoding {
                request = request.content_encoding(encoding);
            }
            if let Some(class) = &object.storage_class {
                request = request.storage_class(StorageClass::from(class.as_str()));
            }
            if let Some(key) = &object.kms_key_id {
                request = request
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(key);
            }
            match request.send().await {
                Ok(_) => Ok(()),
                Err(error) => Err(classify(&object.bucket, &object.key, error)),
            }
        })
    }
}

fn classify<E, R>(bucket: &str, key: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    match &error {
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("UnknownError").to_owned();
            let message = context.err().message().unwrap_or_default().to_owned();
            let reason = format!("S3 refused s3://{bucket}/{key}: {code}: {message}");
            if PERMANENT_CODES.contains(&code.as_str()) {
                StoreError::Permanent(reason)
            } else {
                StoreError::Retry(reason)
            }
        }
        _ => {
            let mut cause: &(dyn std::error::Error + 'static) = &error;
            while let Some(source) = cause.source() {
                cause = source;
            }
            StoreError::Retry(format!("cannot write s3://{bucket}/{key}: {cause}"))
        }
    }
}
