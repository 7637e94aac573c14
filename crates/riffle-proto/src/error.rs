//! Kinesis errors: the exception names clients dispatch on, their HTTP statuses, and the exact
//! texts AWS sends for each situation.
//!
//! A [`KinesisError`] is an *expected* failure: bad input, a missing stream, a throttle. Broken
//! invariants inside riffle are assertions, never one of these. The text builders below
//! reproduce production texts recorded by kinesalite and quoted in public issues (see
//! `kinesis-api.md` §5); tools and tests match on them, so they are kept verbatim, typos and
//! missing final periods included.

use std::fmt;

use crate::time::{amz_date, java_date};

/// Every error type a Kinesis endpoint returns.
///
/// Variant names are the wire names (`__type`), so the enum reads like the AWS documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::enum_variant_names)]
pub enum ErrorKind {
    AccessDeniedException,
    DryRunOperationException,
    ExpiredIteratorException,
    ExpiredNextTokenException,
    InternalFailureException,
    InvalidArgumentException,
    KMSAccessDeniedException,
    KMSDisabledException,
    KMSInvalidStateException,
    KMSNotFoundException,
    /// The one modeled exception without the `Exception` suffix.
    KMSOptInRequired,
    KMSThrottlingException,
    LimitExceededException,
    ProvisionedThroughputExceededException,
    ResourceInUseException,
    ResourceNotFoundException,
    ThrottlingException,
    ValidationException,
    SerializationException,
    UnknownOperationException,
    MissingAuthenticationTokenException,
    IncompleteSignatureException,
    InvalidSignatureException,
    UnrecognizedClientException,
}

impl ErrorKind {
    /// Every kind, for exhaustive tests and lookups.
    pub const ALL: [ErrorKind; 24] = [
        ErrorKind::AccessDeniedException,
        ErrorKind::DryRunOperationException,
        ErrorKind::ExpiredIteratorException,
        ErrorKind::ExpiredNextTokenException,
        ErrorKind::InternalFailureException,
        ErrorKind::InvalidArgumentException,
        ErrorKind::KMSAccessDeniedException,
        ErrorKind::KMSDisabledException,
        ErrorKind::KMSInvalidStateException,
        ErrorKind::KMSNotFoundException,
        ErrorKind::KMSOptInRequired,
        ErrorKind::KMSThrottlingException,
        ErrorKind::LimitExceededException,
        ErrorKind::ProvisionedThroughputExceededException,
        ErrorKind::ResourceInUseException,
        ErrorKind::ResourceNotFoundException,
        ErrorKind::ThrottlingException,
        ErrorKind::ValidationException,
        ErrorKind::SerializationException,
        ErrorKind::UnknownOperationException,
        ErrorKind::MissingAuthenticationTokenException,
        ErrorKind::IncompleteSignatureException,
        ErrorKind::InvalidSignatureException,
        ErrorKind::UnrecognizedClientException,
    ];

    /// The name sent as `__type` (and in `x-amzn-ErrorType`).
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::AccessDeniedException => "AccessDeniedException",
            ErrorKind::DryRunOperationException => "DryRunOperationException",
            ErrorKind::ExpiredIteratorException => "ExpiredIteratorException",
            ErrorKind::ExpiredNextTokenException => "ExpiredNextTokenException",
            ErrorKind::InternalFailureException => "InternalFailureException",
            ErrorKind::InvalidArgumentException => "InvalidArgumentException",
            ErrorKind::KMSAccessDeniedException => "KMSAccessDeniedException",
            ErrorKind::KMSDisabledException => "KMSDisabledException",
            ErrorKind::KMSInvalidStateException => "KMSInvalidStateException",
            ErrorKind::KMSNotFoundException => "KMSNotFoundException",
            ErrorKind::KMSOptInRequired => "KMSOptInRequired",
            ErrorKind::KMSThrottlingException => "KMSThrottlingException",
            ErrorKind::LimitExceededException => "LimitExceededException",
            ErrorKind::ProvisionedThroughputExceededException => {
                "ProvisionedThroughputExceededException"
            }
            ErrorKind::ResourceInUseException => "ResourceInUseException",
            ErrorKind::ResourceNotFoundException => "ResourceNotFoundException",
            ErrorKind::ThrottlingException => "ThrottlingException",
            ErrorKind::ValidationException => "ValidationException",
            ErrorKind::SerializationException => "SerializationException",
            ErrorKind::UnknownOperationException => "UnknownOperationException",
            ErrorKind::MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            ErrorKind::IncompleteSignatureException => "IncompleteSignatureException",
            ErrorKind::InvalidSignatureException => "InvalidSignatureException",
            ErrorKind::UnrecognizedClientException => "UnrecognizedClientException",
        }
    }

    /// The kind whose wire name is `name`, accepting the `ns#Name` and `Name:detail` forms that
    /// botocore also strips.
    pub fn from_type_name(name: &str) -> Option<ErrorKind> {
        let name = name.rsplit_once('#').map_or(name, |(_, short)| short);
        let name = name.split_once(':').map_or(name, |(short, _)| short);
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.type_name() == name)
    }

    /// 500 for InternalFailure, 400 for everything else: SDKs retry 5xx and the throttling
    /// names, and expect every other modeled error as a 400.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InternalFailureException => 500,
            _ => 400,
        }
    }

    /// Coral writes the text of a SerializationException under `Message`, every other one
    /// under `message`.
    fn message_key(self) -> &'static str {
        match self {
            ErrorKind::SerializationException => "Message",
            _ => "message",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// The text PutRecords puts in a failed entry's `ErrorMessage` when riffle failed internally.
pub const INTERNAL_SERVICE_FAILURE: &str = "Internal Service Failure";

/// A Kinesis error: what the client sees as `__type` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisError {
    pub kind: ErrorKind,
    pub message: Option<String>,
}

impl KinesisError {
    pub fn new(kind: ErrorKind, message: Option<String>) -> KinesisError {
        KinesisError { kind, message }
    }

    fn with(kind: ErrorKind, message: impl Into<String>) -> KinesisError {
        KinesisError::new(kind, Some(message.into()))
    }

    /// The wire name of the error's kind.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }

    /// The JSON error body: `{"__type":"X","message":"…"}` (`Message` for
    /// SerializationException; no text member at all when there is no message).
    pub fn to_json(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(64 + self.message.as_ref().map_or(0, String::len));
        body.extend_from_slice(b"{\"__type\":");
        write_json_string(&mut body, self.type_name());
        if let Some(message) = &self.message {
            body.push(b',');
            write_json_string(&mut body, self.kind.message_key());
            body.push(b':');
            write_json_string(&mut body, message);
        }
        body.push(b'}');
        body
    }

    /// The CBOR error body: a map of `__type` and `message` (`Message` for
    /// SerializationException), the members of [`KinesisError::to_json`].
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(48 + self.message.as_ref().map_or(0, String::len));
        crate::cbor::write_map_head(&mut body, 1 + u64::from(self.message.is_some()));
        crate::cbor::write_text(&mut body, "__type");
        crate::cbor::write_text(&mut body, self.type_name());
        if let Some(message) = &self.message {
            crate::cbor::write_text(&mut body, self.kind.message_key());
            crate::cbor::write_text(&mut body, message);
        }
        body
    }

    // ----- One constructor per kind, for texts built elsewhere. -----

    pub fn access_denied(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::AccessDeniedException, message)
    }

    pub fn expired_next_token(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::ExpiredNextTokenException, message)
    }

    pub fn internal(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::InternalFailureException, message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::InvalidArgumentException, message)
    }

    pub fn limit_exceeded(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::LimitExceededException, message)
    }

    pub fn provisioned_throughput_exceeded(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::ProvisionedThroughputExceededException, message)
    }

    pub fn resource_in_use(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::ResourceInUseException, message)
    }

    pub fn resource_not_found(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::ResourceNotFoundException, message)
    }

    pub fn serialization(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::SerializationException, message)
    }

    /// A ValidationException with a free text (the Coral-format ones come from
    /// [`crate::validate::Validator`]).
    pub fn validation_message(message: impl Into<String>) -> KinesisError {
        KinesisError::with(ErrorKind::ValidationException, message)
    }

    /// AWS answers an unknown target with a bare `{"__type":"UnknownOperationException"}`.
    pub fn unknown_operation() -> KinesisError {
        KinesisError::new(ErrorKind::UnknownOperationException, None)
    }

    /// What a `DryRun` request gets where the real call would have succeeded.
    pub fn dry_run() -> KinesisError {
        KinesisError::with(
            ErrorKind::DryRunOperationException,
            "Request would have succeeded, but DryRun flag is set.",
        )
    }

    // ----- Resources -----

    /// `Stream S under account A not found.`
    pub fn stream_not_found(stream: &str, account: &str) -> KinesisError {
        KinesisError::resource_not_found(format!(
            "Stream {stream} under account {account} not found."
        ))
    }

    /// DeleteResourcePolicy on a stream or consumer that has no policy. AWS answers
    /// ResourceNotFoundException (LocalStack's suite, recorded against AWS); the text is
    /// LocalStack's, as AWS's own is not published.
    pub fn resource_policy_not_found(resource_arn: &str) -> KinesisError {
        KinesisError::resource_not_found(format!(
            "No resource policy found for resource ARN {resource_arn}"
        ))
    }

    /// `Shard sid in stream S under account A does not exist` (AWS has no final period here).
    pub fn shard_not_found(shard_id: &str, stream: &str, account: &str) -> KinesisError {
        KinesisError::resource_not_found(format!(
            "Shard {shard_id} in stream {stream} under account {account} does not exist"
        ))
    }

    /// For a shard argument that does not parse as a shard ID at all:
    /// `Could not find shard X in stream S under account A.`
    pub fn shard_unparseable(shard_arg: &str, stream: &str, account: &str) -> KinesisError {
        KinesisError::resource_not_found(format!(
            "Could not find shard {shard_arg} in stream {stream} under account {account}."
        ))
    }

    /// CreateStream of an existing name: `Stream S under account A already exists.`
    pub fn stream_exists(stream: &str, account: &str) -> KinesisError {
        KinesisError::resource_in_use(format!(
            "Stream {stream} under account {account} already exists."
        ))
    }

    /// A mutation of a stream that is not ACTIVE:
    /// `Stream S under account A not ACTIVE, instead in state UPDATING`.
    pub fn stream_not_active(stream: &str, account: &str, state: &str) -> KinesisError {
        KinesisError::resource_in_use(format!(
            "Stream {stream} under account {account} not ACTIVE, instead in state {state}"
        ))
    }

    /// The account's shard quota would be exceeded.
    pub fn shard_limit_exceeded(
        account: &str,
        region: &str,
        current_shards: u32,
        limit: u32,
        additional_shards: u32,
    ) -> KinesisError {
        KinesisError::limit_exceeded(format!(
            "This request would exceed the shard limit for the account {account} in {region}. \
             Current shard count for the account: {current_shards}. Limit: {limit}. \
             Number of additional shards that would have resulted from this request: \
             {additional_shards}. Refer to the AWS Service Limits page \
             (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current \
             limits and how to request higher limits."
        ))
    }

    /// A control-plane call rate exceeded: `Rate exceeded for stream S under account A.`
    pub fn stream_rate_exceeded(stream: &str, account: &str) -> KinesisError {
        KinesisError::limit_exceeded(format!(
            "Rate exceeded for stream {stream} under account {account}."
        ))
    }

    /// A control-plane call rate exceeded by a call that names no stream (CreateStream,
    /// ListStreams, DescribeLimits, account settings): `Rate exceeded for account A.` AWS
    /// publishes no text for these; this is the stream text without the stream.
    pub fn account_rate_exceeded(account: &str) -> KinesisError {
        KinesisError::limit_exceeded(format!("Rate exceeded for account {account}."))
    }

    /// A tag change would leave the stream with more than `limit` tags.
    pub fn too_many_tags(stream: &str, account: &str, limit: usize) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "Failed to add tags to stream {stream} under account {account} because a given \
             stream cannot have more than {limit} tags associated with it."
        ))
    }

    // ----- Throughput -----

    /// The `ErrorMessage` of a throttled PutRecords entry (also PutRecord's message).
    pub fn write_throttled_message(shard_id: &str, stream: &str, account: &str) -> String {
        format!("Rate exceeded for shard {shard_id} in stream {stream} under account {account}.")
    }

    /// PutRecord over the shard's write throughput.
    pub fn write_throttled(shard_id: &str, stream: &str, account: &str) -> KinesisError {
        KinesisError::provisioned_throughput_exceeded(KinesisError::write_throttled_message(
            shard_id, stream, account,
        ))
    }

    /// GetRecords over the shard's read throughput, in the current AWS form:
    /// `Rate exceeded for Shard - A/S/sid`.
    pub fn read_throttled(account: &str, stream: &str, shard_id: &str) -> KinesisError {
        KinesisError::provisioned_throughput_exceeded(format!(
            "Rate exceeded for Shard - {account}/{stream}/{shard_id}"
        ))
    }

    // ----- Records and iterators -----

    /// `Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified
    /// value was N`.
    pub fn explicit_hash_key_invalid(value: &str) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. \
             Specified value was {value}"
        ))
    }

    /// A malformed or foreign `SequenceNumberForOrdering` in PutRecord.
    pub fn sequence_number_for_ordering_invalid(
        sequence_number: &str,
        stream: &str,
        account: &str,
    ) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "ExclusiveMinimumSequenceNumber {sequence_number} used in PutRecord on stream \
             {stream} under account {account} is invalid."
        ))
    }

    /// A shard iterator that does not decode or authenticate.
    pub fn invalid_shard_iterator() -> KinesisError {
        KinesisError::invalid_argument("Invalid ShardIterator.")
    }

    /// An iterator used after its lifetime, with both instants in Java's date format.
    pub fn iterator_expired(created_ms: u64, now_ms: u64) -> KinesisError {
        KinesisError::new(
            ErrorKind::ExpiredIteratorException,
            Some(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} \
                 which is further in the future than the tolerated delay of {} milliseconds.",
                java_date(saturating_i64(created_ms)),
                java_date(saturating_i64(now_ms)),
                crate::limits::ITERATOR_LIFETIME_MS
            )),
        )
    }

    /// The same as [`KinesisError::iterator_expired`], named after the exception.
    pub fn expired_iterator(created_ms: u64, now_ms: u64) -> KinesisError {
        KinesisError::iterator_expired(created_ms, now_ms)
    }

    /// GetShardIterator with a sequence number where the type takes none, or none where it
    /// needs one. `with_sequence_number` says which of the two the request did.
    pub fn iterator_type_mismatch(iterator_type: &str, with_sequence_number: bool) -> KinesisError {
        let specified = if with_sequence_number {
            "also a StartingSequenceNumber"
        } else {
            "no StartingSequenceNumber"
        };
        KinesisError::invalid_argument(format!(
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
             StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. \
             Request specified {iterator_type} and {specified}."
        ))
    }

    /// A starting sequence number minted for another shard.
    pub fn sequence_number_wrong_shard(
        encoded_shard_id: &str,
        used_shard_id: &str,
    ) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "Invalid StartingSequenceNumber. It encodes {encoded_shard_id}, while it was used in \
             a call to a shard with {used_shard_id}"
        ))
    }

    /// A starting sequence number that does not decode at all.
    pub fn starting_sequence_number_invalid(
        sequence_number: &str,
        shard_id: &str,
        stream: &str,
        account: &str,
    ) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "StartingSequenceNumber {sequence_number} used in GetShardIterator on shard \
             {shard_id} in stream {stream} under account {account} is invalid."
        ))
    }

    /// A starting sequence number of the right shard but another incarnation of the stream.
    pub fn starting_sequence_number_foreign(
        sequence_number: &str,
        shard_id: &str,
        stream: &str,
        account: &str,
    ) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "StartingSequenceNumber {sequence_number} used in GetShardIterator on shard \
             {shard_id} in stream {stream} under account {account} is invalid because it did \
             not come from this stream."
        ))
    }

    /// AT_TIMESTAMP without a `Timestamp`.
    pub fn timestamp_missing() -> KinesisError {
        KinesisError::invalid_argument(
            "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. \
             Current request has no timestamp parameter.",
        )
    }

    /// AT_TIMESTAMP with a time in the future.
    pub fn timestamp_in_future(timestamp_ms: i64, now_ms: i64) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "The timestampInMillis parameter cannot be greater than the \
             currentTimestampInMillis. timestampInMillis: {timestamp_ms}, \
             currentTimestampInMillis: {now_ms}"
        ))
    }

    // ----- Resharding -----

    /// SplitShard with a key outside `(start + 1, end)`.
    pub fn split_hash_key_invalid(
        new_starting_hash_key: &str,
        shard_id: &str,
        stream: &str,
        account: &str,
        shard_starting_hash_key: u128,
        shard_ending_hash_key: u128,
    ) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "NewStartingHashKey {new_starting_hash_key} used in SplitShard() on shard {shard_id} \
             in stream {stream} under account {account} is not both greater than one plus the \
             shard's StartingHashKey {shard_starting_hash_key} and less than the shard's \
             EndingHashKey {shard_ending_hash_key}."
        ))
    }

    /// MergeShards of shards that are not adjacent (or given in the wrong order).
    pub fn shards_not_adjacent(
        shard_to_merge: &str,
        adjacent_shard: &str,
        stream: &str,
        account: &str,
    ) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "Shards {shard_to_merge} and {adjacent_shard} in stream {stream} under account \
             {account} are not an adjacent pair of shards eligible for merging"
        ))
    }

    // ----- Retention -----

    pub fn retention_too_short(hours: i64) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "Minimum allowed retention period is {} hours. Requested retention period ({hours} \
             hours) is too short.",
            crate::limits::RETENTION_HOURS_MIN
        ))
    }

    pub fn retention_too_long(hours: i64) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "Maximum allowed retention period is {} hours. Requested retention period ({hours} \
             hours) is too long.",
            crate::limits::RETENTION_HOURS_MAX
        ))
    }

    /// IncreaseStreamRetentionPeriod below the current retention.
    pub fn retention_shorter_than_current(
        hours: i64,
        stream: &str,
        current_hours: i64,
    ) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "Requested retention period ({hours} hours) for stream {stream} can not be shorter \
             than existing retention period ({current_hours} hours). Use DecreaseRetentionPeriod \
             API."
        ))
    }

    /// DecreaseStreamRetentionPeriod above the current retention.
    pub fn retention_longer_than_current(
        hours: i64,
        stream: &str,
        current_hours: i64,
    ) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "Requested retention period ({hours} hours) for stream {stream} can not be longer \
             than existing retention period ({current_hours} hours). Use IncreaseRetentionPeriod \
             API."
        ))
    }

    // ----- Tags, listing, creation -----

    /// Tag keys or values with characters outside the allowed set. (AWS's text lists `%` even
    /// though it rejects it.)
    pub fn tags_invalid_characters() -> KinesisError {
        KinesisError::invalid_argument(
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, \
             white space, _ . / = + - % @.",
        )
    }

    /// Tags holding `%`: the character check lets it through (its text even lists `%`), then
    /// production refuses it with this second text. `adding` picks AddTagsToStream's wording
    /// over RemoveTagsFromStream's.
    pub fn tags_illegal_characters(adding: bool, stream: &str, account: &str) -> KinesisError {
        let (verb, preposition) = if adding {
            ("add", "to")
        } else {
            ("remove", "from")
        };
        KinesisError::invalid_argument(format!(
            "Failed to {verb} tags {preposition} stream {stream} under account {account} because \
             some tags contained illegal characters. The allowed characters are Unicode letters, \
             white-spaces, '_',',','/','=','+','-','@'."
        ))
    }

    /// ListShards with neither a token nor a stream.
    pub fn list_shards_stream_missing() -> KinesisError {
        KinesisError::invalid_argument("Either NextToken or StreamName should be provided.")
    }

    /// ListShards with both a token and a stream.
    pub fn list_shards_token_and_stream() -> KinesisError {
        KinesisError::next_token_conflict("StreamName")
    }

    /// ListShards with a `NextToken` and `member` (`StreamName`, `StreamARN`,
    /// `ExclusiveStartShardId`, `ShardFilter`, `StreamCreationTimestamp`), which the token
    /// already implies.
    pub fn next_token_conflict(member: &str) -> KinesisError {
        KinesisError::invalid_argument(format!(
            "NextToken and {member} cannot be provided together."
        ))
    }

    /// CreateStream of an on-demand stream with a shard count.
    pub fn shard_count_not_expected_on_demand() -> KinesisError {
        KinesisError::validation_message("ShardCount is not expected when StreamMode=ON_DEMAND")
    }

    /// A record without a partition key on a stream that routes by key, in Coral's format.
    /// `record_index` is the 0-based PutRecords entry, or `None` for PutRecord.
    pub fn partition_key_missing(record_index: Option<usize>) -> KinesisError {
        let path = match record_index {
            Some(index) => format!("records.{}.member.partitionKey", index + 1),
            None => "partitionKey".to_owned(),
        };
        KinesisError::validation_message(format!(
            "1 validation error detected: Value null at '{path}' failed to satisfy constraint: \
             Member must not be null"
        ))
    }

    // ----- Authentication -----

    pub fn missing_authentication_token() -> KinesisError {
        KinesisError::with(
            ErrorKind::MissingAuthenticationTokenException,
            "Missing Authentication Token",
        )
    }

    pub fn unrecognized_client() -> KinesisError {
        KinesisError::with(
            ErrorKind::UnrecognizedClientException,
            "The security token included in the request is invalid.",
        )
    }

    pub fn invalid_signature() -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        )
    }

    /// The signature is older than the skew window allows.
    pub fn signature_expired(signed_ms: i64, now_ms: i64, skew_ms: i64) -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            format!(
                "Signature expired: {} is now earlier than {} ({} - {} min.)",
                amz_date(signed_ms),
                amz_date(now_ms - skew_ms),
                amz_date(now_ms),
                skew_ms / 60_000
            ),
        )
    }

    /// The signature is further in the future than the skew window allows.
    pub fn signature_not_yet_current(signed_ms: i64, now_ms: i64, skew_ms: i64) -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            format!(
                "Signature not yet current: {} is still later than {} ({} + {} min.)",
                amz_date(signed_ms),
                amz_date(now_ms + skew_ms),
                amz_date(now_ms),
                skew_ms / 60_000
            ),
        )
    }

    /// The header form lacks parts: `missing` names them, from `Credential`, `Signature`,
    /// `SignedHeaders`, and `Date` for a request with neither `X-Amz-Date` nor `Date`.
    pub fn incomplete_signature_header(missing: &[&str], authorization: &str) -> KinesisError {
        let mut message = String::new();
        for part in missing {
            if *part == "Date" {
                message.push_str(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a \
                     'Date' header. ",
                );
            } else {
                message.push_str(&format!(
                    "Authorization header requires '{part}' parameter. "
                ));
            }
        }
        message.push_str("Authorization=");
        message.push_str(authorization);
        KinesisError::with(ErrorKind::IncompleteSignatureException, message)
    }

    /// The query-string form lacks parameters (`X-Amz-Algorithm`, `X-Amz-Credential`, …).
    pub fn incomplete_signature_query(missing: &[&str]) -> KinesisError {
        let mut message = String::new();
        for parameter in missing {
            message.push_str(&format!(
                "AWS query-string parameters must include '{parameter}'. "
            ));
        }
        message.push_str("Re-examine the query-string parameters.");
        KinesisError::with(ErrorKind::IncompleteSignatureException, message)
    }

    /// Both the header and the query-string form were sent.
    pub fn signature_both_forms() -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP \
             header.",
        )
    }

    /// A part of the `Authorization` header that is not `key=value` (AWS's text; it echoes
    /// the header, so [`KinesisError::log_message`] leaves it out of logs).
    pub fn authorization_part_without_equals(part: &str, authorization: &str) -> KinesisError {
        KinesisError::with(
            ErrorKind::IncompleteSignatureException,
            format!(
                "'{part}' not a valid key=value pair (missing equal-sign) in Authorization \
                 header: '{authorization}'."
            ),
        )
    }

    /// A credential that is not `keyid/date/region/service/term` (AWS's text).
    pub fn credential_malformed(credential: &str) -> KinesisError {
        KinesisError::with(
            ErrorKind::IncompleteSignatureException,
            format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got '{credential}'"
            ),
        )
    }

    /// An `X-Amz-Date` (or `Date`) that does not parse (AWS's text).
    pub fn signing_date_malformed(date: &str) -> KinesisError {
        KinesisError::with(
            ErrorKind::IncompleteSignatureException,
            format!(
                "Date must be in ISO-8601 'basic format'. Got '{date}'. See \
                 http://en.wikipedia.org/wiki/ISO_8601"
            ),
        )
    }

    /// A signing algorithm other than `AWS4-HMAC-SHA256` (riffle's text: SigV4a and older
    /// versions are not served).
    pub fn signing_algorithm_unsupported(algorithm: &str) -> KinesisError {
        KinesisError::with(
            ErrorKind::IncompleteSignatureException,
            format!(
                "Unsupported AWS 'algorithm': '{algorithm}'. Only AWS4-HMAC-SHA256 is accepted."
            ),
        )
    }

    /// A presigned request's `X-Amz-Expires` that is not 1 to 604800 seconds.
    pub fn presigned_expires_invalid(expires: &str) -> KinesisError {
        KinesisError::with(
            ErrorKind::IncompleteSignatureException,
            format!(
                "X-Amz-Expires must be a whole number of seconds from 1 to 604800 (a week), \
                 got '{expires}'."
            ),
        )
    }

    /// The credential scope's date is not the request's date (AWS's text).
    pub fn credential_scope_date(scope_date: &str, amz_date: &str) -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{scope_date}' != '{}', from '{amz_date}'.",
                amz_date.get(..8).unwrap_or(amz_date)
            ),
        )
    }

    /// The credential scope names another service (AWS's text, trailing space included).
    pub fn credential_scope_service(service: &str) -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            format!("Credential should be scoped to correct service: '{service}'. "),
        )
    }

    /// The credential scope's region is empty (AWS's text).
    pub fn credential_scope_region(region: &str) -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            format!("Credential should be scoped to a valid region, not '{region}'. "),
        )
    }

    /// The credential scope does not end in `aws4_request`.
    pub fn credential_scope_terminator(terminator: &str) -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not \
                 '{terminator}'. "
            ),
        )
    }

    /// `host` is not among the signed headers (AWS's text).
    pub fn host_not_signed() -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    }

    /// `X-Amz-Content-Sha256` is neither `UNSIGNED-PAYLOAD` nor the body's SHA-256 (S3's text).
    pub fn payload_hash_mismatch() -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    }

    /// A presigned request used after `X-Amz-Date` + `X-Amz-Expires`.
    pub fn presigned_expired(signed_ms: i64, expires_s: i64, now_ms: i64) -> KinesisError {
        KinesisError::with(
            ErrorKind::InvalidSignatureException,
            format!(
                "Signature expired: {} is now earlier than {} ({} - {expires_s} sec. of \
                 X-Amz-Expires)",
                amz_date(signed_ms),
                amz_date(now_ms.saturating_sub(expires_s.saturating_mul(1000))),
                amz_date(now_ms),
            ),
        )
    }

    /// The message as it may be logged: the AWS texts that echo the client's `Authorization`
    /// header (which holds a signature usable for minutes) are cut before the echo.
    pub fn log_message(&self) -> Option<&str> {
        let message = self.message.as_deref()?;
        if self.kind != ErrorKind::IncompleteSignatureException {
            return Some(message);
        }
        if let Some(at) = message.find("Authorization=") {
            return Some(message[..at].trim_end());
        }
        if message.contains("in Authorization header: '") {
            return Some("a part of the Authorization header is not a key=value pair");
        }
        Some(message)
    }
}

impl fmt::Display for KinesisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{}: {message}", self.type_name()),
            None => f.write_str(self.type_name()),
        }
    }
}

impl std::error::Error for KinesisError {}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Appends `text` as a JSON string literal.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // serde_json's string escaping writes into a Vec and cannot fail there.
    let mut serializer = serde_json::Serializer::new(out);
    if serde::Serializer::serialize_str(&mut serializer, text).is_err() {
        unreachable!("serializing a str into a Vec cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(error: &KinesisError) -> serde_json::Value {
        serde_json::from_slice(&error.to_json()).unwrap()
    }

    #[test]
    fn every_kind_has_a_distinct_name_and_round_trips() {
        let mut names: Vec<&str> = ErrorKind::ALL.iter().map(|kind| kind.type_name()).collect();
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_type_name(kind.type_name()), Some(kind));
            assert_eq!(kind.to_string(), kind.type_name());
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        assert_eq!(
            ErrorKind::from_type_name("com.amazonaws.kinesis#ResourceNotFoundException:http"),
            Some(ErrorKind::ResourceNotFoundException)
        );
        assert_eq!(ErrorKind::from_type_name("NoSuchThing"), None);
        assert_eq!(ErrorKind::KMSOptInRequired.type_name(), "KMSOptInRequired");
    }

    #[test]
    fn only_internal_failure_is_a_500() {
        for kind in ErrorKind::ALL {
            let expected = if kind == ErrorKind::InternalFailureException {
                500
            } else {
                400
            };
            assert_eq!(kind.http_status(), expected, "{kind}");
        }
    }

    #[test]
    fn json_bodies_use_the_right_message_key() {
        let error = KinesisError::stream_not_found("s", "123456789012");
        assert_eq!(
            error.to_json(),
            br#"{"__type":"ResourceNotFoundException","message":"Stream s under account 123456789012 not found."}"#
        );
        let error = KinesisError::serialization("Start of list found where not expected");
        assert_eq!(
            error.to_json(),
            br#"{"__type":"SerializationException","Message":"Start of list found where not expected"}"#
        );
        assert_eq!(
            KinesisError::unknown_operation().to_json(),
            br#"{"__type":"UnknownOperationException"}"#
        );
    }

    #[test]
    fn cbor_bodies_have_the_json_members() {
        // {"__type": "ResourceNotFoundException", "message": "Stream s ..."}, definite
        // lengths, written out by hand from RFC 8949.
        let message = "Stream s under account 123456789012 not found.";
        let mut expected = vec![0xa2, 0x66];
        expected.extend_from_slice(b"__type");
        expected.extend_from_slice(&[0x78, 25]);
        expected.extend_from_slice(b"ResourceNotFoundException");
        expected.push(0x67);
        expected.extend_from_slice(b"message");
        expected.extend_from_slice(&[0x78, message.len() as u8]);
        expected.extend_from_slice(message.as_bytes());
        assert_eq!(
            KinesisError::stream_not_found("s", "123456789012").to_cbor(),
            expected
        );

        let mut expected = vec![0xa2, 0x66];
        expected.extend_from_slice(b"__type");
        expected.extend_from_slice(&[0x76]);
        expected.extend_from_slice(b"SerializationException");
        expected.push(0x67);
        expected.extend_from_slice(b"Message");
        expected.push(0x63);
        expected.extend_from_slice(b"bad");
        assert_eq!(KinesisError::serialization("bad").to_cbor(), expected);

        let mut expected = vec![0xa1, 0x66];
        expected.extend_from_slice(b"__type");
        expected.extend_from_slice(&[0x78, 25]);
        expected.extend_from_slice(b"UnknownOperationException");
        assert_eq!(KinesisError::unknown_operation().to_cbor(), expected);
    }

    #[test]
    fn json_bodies_escape_messages() {
        let error = KinesisError::invalid_argument("quote \" backslash \\ newline \n tab \t");
        assert_eq!(
            json(&error)["message"],
            "quote \" backslash \\ newline \n tab \t"
        );
    }

    #[test]
    fn display_names_the_kind() {
        assert_eq!(
            KinesisError::invalid_shard_iterator().to_string(),
            "InvalidArgumentException: Invalid ShardIterator."
        );
        assert_eq!(
            KinesisError::unknown_operation().to_string(),
            "UnknownOperationException"
        );
    }

    #[test]
    fn resource_texts() {
        let account = "123456789012";
        assert_eq!(
            KinesisError::stream_not_found("s1", account)
                .message
                .unwrap(),
            "Stream s1 under account 123456789012 not found."
        );
        let error = KinesisError::shard_not_found("shardId-000000000005", "s1", account);
        assert_eq!(error.kind, ErrorKind::ResourceNotFoundException);
        assert_eq!(
            error.message.unwrap(),
            "Shard shardId-000000000005 in stream s1 under account 123456789012 does not exist"
        );
        assert_eq!(
            KinesisError::shard_unparseable("ABKLFD8", "s1", account)
                .message
                .unwrap(),
            "Could not find shard ABKLFD8 in stream s1 under account 123456789012."
        );
        let error = KinesisError::stream_exists("s1", account);
        assert_eq!(error.kind, ErrorKind::ResourceInUseException);
        assert_eq!(
            error.message.unwrap(),
            "Stream s1 under account 123456789012 already exists."
        );
        let error = KinesisError::stream_not_active("s1", account, "UPDATING");
        assert_eq!(error.kind, ErrorKind::ResourceInUseException);
        assert_eq!(
            error.message.unwrap(),
            "Stream s1 under account 123456789012 not ACTIVE, instead in state UPDATING"
        );
        let error = KinesisError::stream_rate_exceeded("s1", account);
        assert_eq!(error.kind, ErrorKind::LimitExceededException);
        assert_eq!(
            error.message.unwrap(),
            "Rate exceeded for stream s1 under account 123456789012."
        );
        let error = KinesisError::account_rate_exceeded(account);
        assert_eq!(error.kind, ErrorKind::LimitExceededException);
        assert_eq!(
            error.message.unwrap(),
            "Rate exceeded for account 123456789012."
        );
    }

    #[test]
    fn shard_limit_text_matches_recorded_aws_text() {
        let error = KinesisError::shard_limit_exceeded("123456789012", "us-east-1", 3, 10, 1000);
        assert_eq!(error.kind, ErrorKind::LimitExceededException);
        assert_eq!(
            error.message.unwrap(),
            "This request would exceed the shard limit for the account 123456789012 in \
             us-east-1. Current shard count for the account: 3. Limit: 10. Number of additional \
             shards that would have resulted from this request: 1000. Refer to the AWS Service \
             Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) \
             for current limits and how to request higher limits."
        );
    }

    #[test]
    fn throughput_texts() {
        let error = KinesisError::write_throttled("shardId-000000000001", "s1", "123456789012");
        assert_eq!(
            error.kind,
            ErrorKind::ProvisionedThroughputExceededException
        );
        assert_eq!(
            error.message.unwrap(),
            "Rate exceeded for shard shardId-000000000001 in stream s1 under account \
             123456789012."
        );
        assert_eq!(
            KinesisError::read_throttled("123456789012", "s1", "shardId-000000000001")
                .message
                .unwrap(),
            "Rate exceeded for Shard - 123456789012/s1/shardId-000000000001"
        );
        assert_eq!(INTERNAL_SERVICE_FAILURE, "Internal Service Failure");
    }

    #[test]
    fn record_and_iterator_texts() {
        let account = "123456789012";
        assert_eq!(
            KinesisError::explicit_hash_key_invalid("340282366920938463463374607431768211456")
                .message
                .unwrap(),
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. \
             Specified value was 340282366920938463463374607431768211456"
        );
        assert_eq!(
            KinesisError::sequence_number_for_ordering_invalid("123", "s1", account)
                .message
                .unwrap(),
            "ExclusiveMinimumSequenceNumber 123 used in PutRecord on stream s1 under account \
             123456789012 is invalid."
        );
        assert_eq!(
            KinesisError::invalid_shard_iterator().message.unwrap(),
            "Invalid ShardIterator."
        );
        assert_eq!(
            KinesisError::iterator_type_mismatch("LATEST", true)
                .message
                .unwrap(),
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
             StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. \
             Request specified LATEST and also a StartingSequenceNumber."
        );
        assert_eq!(
            KinesisError::iterator_type_mismatch("AT_SEQUENCE_NUMBER", false)
                .message
                .unwrap(),
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
             StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. \
             Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber."
        );
        assert_eq!(
            KinesisError::sequence_number_wrong_shard(
                "shardId-000000000005",
                "shardId-000000000000"
            )
            .message
            .unwrap(),
            "Invalid StartingSequenceNumber. It encodes shardId-000000000005, while it was used \
             in a call to a shard with shardId-000000000000"
        );
        assert_eq!(
            KinesisError::starting_sequence_number_invalid(
                "7",
                "shardId-000000000000",
                "s1",
                account
            )
            .message
            .unwrap(),
            "StartingSequenceNumber 7 used in GetShardIterator on shard shardId-000000000000 in \
             stream s1 under account 123456789012 is invalid."
        );
        assert_eq!(
            KinesisError::starting_sequence_number_foreign(
                "7",
                "shardId-000000000000",
                "s1",
                account
            )
            .message
            .unwrap(),
            "StartingSequenceNumber 7 used in GetShardIterator on shard shardId-000000000000 in \
             stream s1 under account 123456789012 is invalid because it did not come from this \
             stream."
        );
        assert_eq!(
            KinesisError::timestamp_missing().message.unwrap(),
            "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current \
             request has no timestamp parameter."
        );
        assert_eq!(
            KinesisError::timestamp_in_future(2000, 1000)
                .message
                .unwrap(),
            "The timestampInMillis parameter cannot be greater than the \
             currentTimestampInMillis. timestampInMillis: 2000, currentTimestampInMillis: 1000"
        );
    }

    #[test]
    fn iterator_expired_uses_java_dates() {
        let error = KinesisError::iterator_expired(1_421_889_722_000, 1_421_890_023_000);
        assert_eq!(error.kind, ErrorKind::ExpiredIteratorException);
        assert_eq!(
            error.message.unwrap(),
            "Iterator expired. The iterator was created at time Thu Jan 22 01:22:02 UTC 2015 \
             while right now it is Thu Jan 22 01:27:03 UTC 2015 which is further in the future \
             than the tolerated delay of 300000 milliseconds."
        );
        assert_eq!(
            KinesisError::expired_iterator(0, 1),
            KinesisError::iterator_expired(0, 1)
        );
    }

    #[test]
    fn resharding_texts() {
        assert_eq!(
            KinesisError::split_hash_key_invalid(
                "5",
                "shardId-000000000000",
                "s1",
                "123456789012",
                0,
                4
            )
            .message
            .unwrap(),
            "NewStartingHashKey 5 used in SplitShard() on shard shardId-000000000000 in stream s1 \
             under account 123456789012 is not both greater than one plus the shard's \
             StartingHashKey 0 and less than the shard's EndingHashKey 4."
        );
        assert_eq!(
            KinesisError::shards_not_adjacent(
                "shardId-000000000000",
                "shardId-000000000002",
                "s1",
                "123456789012"
            )
            .message
            .unwrap(),
            "Shards shardId-000000000000 and shardId-000000000002 in stream s1 under account \
             123456789012 are not an adjacent pair of shards eligible for merging"
        );
    }

    #[test]
    fn retention_texts() {
        assert_eq!(
            KinesisError::retention_too_short(23).message.unwrap(),
            "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) \
             is too short."
        );
        assert_eq!(
            KinesisError::retention_too_long(8761).message.unwrap(),
            "Maximum allowed retention period is 8760 hours. Requested retention period (8761 \
             hours) is too long."
        );
        assert_eq!(
            KinesisError::retention_shorter_than_current(24, "s1", 25)
                .message
                .unwrap(),
            "Requested retention period (24 hours) for stream s1 can not be shorter than existing \
             retention period (25 hours). Use DecreaseRetentionPeriod API."
        );
        assert_eq!(
            KinesisError::retention_longer_than_current(48, "s1", 25)
                .message
                .unwrap(),
            "Requested retention period (48 hours) for stream s1 can not be longer than existing \
             retention period (25 hours). Use IncreaseRetentionPeriod API."
        );
    }

    #[test]
    fn tag_listing_and_creation_texts() {
        assert_eq!(
            KinesisError::tags_invalid_characters().message.unwrap(),
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, \
             white space, _ . / = + - % @."
        );
        assert_eq!(
            KinesisError::too_many_tags("s1", "123456789012", 50)
                .message
                .unwrap(),
            "Failed to add tags to stream s1 under account 123456789012 because a given stream \
             cannot have more than 50 tags associated with it."
        );
        assert_eq!(
            KinesisError::tags_illegal_characters(true, "s1", "123456789012")
                .message
                .unwrap(),
            "Failed to add tags to stream s1 under account 123456789012 because some tags \
             contained illegal characters. The allowed characters are Unicode letters, \
             white-spaces, '_',',','/','=','+','-','@'."
        );
        assert_eq!(
            KinesisError::tags_illegal_characters(false, "s1", "123456789012")
                .message
                .unwrap(),
            "Failed to remove tags from stream s1 under account 123456789012 because some tags \
             contained illegal characters. The allowed characters are Unicode letters, \
             white-spaces, '_',',','/','=','+','-','@'."
        );
        assert_eq!(
            KinesisError::next_token_conflict("ShardFilter")
                .message
                .unwrap(),
            "NextToken and ShardFilter cannot be provided together."
        );
        assert_eq!(
            KinesisError::list_shards_stream_missing().message.unwrap(),
            "Either NextToken or StreamName should be provided."
        );
        assert_eq!(
            KinesisError::list_shards_token_and_stream()
                .message
                .unwrap(),
            "NextToken and StreamName cannot be provided together."
        );
        let error = KinesisError::shard_count_not_expected_on_demand();
        assert_eq!(error.kind, ErrorKind::ValidationException);
        assert_eq!(
            error.message.unwrap(),
            "ShardCount is not expected when StreamMode=ON_DEMAND"
        );
        assert_eq!(
            KinesisError::partition_key_missing(Some(2))
                .message
                .unwrap(),
            "1 validation error detected: Value null at 'records.3.member.partitionKey' failed to \
             satisfy constraint: Member must not be null"
        );
        assert_eq!(
            KinesisError::partition_key_missing(None).message.unwrap(),
            "1 validation error detected: Value null at 'partitionKey' failed to satisfy \
             constraint: Member must not be null"
        );
        assert_eq!(
            KinesisError::dry_run().kind,
            ErrorKind::DryRunOperationException
        );
    }

    #[test]
    fn auth_texts() {
        assert_eq!(
            KinesisError::missing_authentication_token()
                .message
                .unwrap(),
            "Missing Authentication Token"
        );
        assert_eq!(
            KinesisError::unrecognized_client().message.unwrap(),
            "The security token included in the request is invalid."
        );
        assert_eq!(
            KinesisError::invalid_signature().message.unwrap(),
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
        );
        // The recorded texts: signed 17:41:01, now 17:50:04 (window 5 minutes).
        let error = KinesisError::signature_expired(1_537_465_261_000, 1_537_465_804_000, 300_000);
        assert_eq!(error.kind, ErrorKind::InvalidSignatureException);
        assert_eq!(
            error.message.unwrap(),
            "Signature expired: 20180920T174101Z is now earlier than 20180920T174504Z \
             (20180920T175004Z - 5 min.)"
        );
        let error =
            KinesisError::signature_not_yet_current(1_538_499_909_000, 1_538_499_492_000, 300_000);
        assert_eq!(
            error.message.unwrap(),
            "Signature not yet current: 20181002T170509Z is still later than 20181002T170312Z \
             (20181002T165812Z + 5 min.)"
        );
        let error = KinesisError::incomplete_signature_header(
            &["Signature", "Date"],
            "AWS4-HMAC-SHA256 Credential=x",
        );
        assert_eq!(error.kind, ErrorKind::IncompleteSignatureException);
        assert_eq!(
            error.message.unwrap(),
            "Authorization header requires 'Signature' parameter. Authorization header requires \
             existence of either a 'X-Amz-Date' or a 'Date' header. \
             Authorization=AWS4-HMAC-SHA256 Credential=x"
        );
        assert_eq!(
            KinesisError::incomplete_signature_query(&["X-Amz-Algorithm"])
                .message
                .unwrap(),
            "AWS query-string parameters must include 'X-Amz-Algorithm'. Re-examine the \
             query-string parameters."
        );
        assert_eq!(
            KinesisError::signature_both_forms().message.unwrap(),
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP \
             header."
        );
        // Quoted from AWS responses in public issues (aws-sdk-go-v2#163, cloud9-sync#10,
        // yet-another-cloudwatch-exporter#169, aws-sdk-php#2469).
        assert_eq!(
            KinesisError::credential_scope_service("kinesis")
                .message
                .unwrap(),
            "Credential should be scoped to correct service: 'kinesis'. "
        );
        let error = KinesisError::authorization_part_without_equals(
            "AKID/20181128/eu-central-1/kinesis/aws4_request",
            "AWS4-HMAC-SHA256 Credential= AKID/20181128/eu-central-1/kinesis/aws4_request",
        );
        assert_eq!(error.kind, ErrorKind::IncompleteSignatureException);
        assert_eq!(
            error.message.as_deref().unwrap(),
            "'AKID/20181128/eu-central-1/kinesis/aws4_request' not a valid key=value pair \
             (missing equal-sign) in Authorization header: 'AWS4-HMAC-SHA256 Credential= \
             AKID/20181128/eu-central-1/kinesis/aws4_request'."
        );
        assert_eq!(
            KinesisError::credential_malformed("a/b/20200619/us-west-2/kinesis/aws4_request")
                .message
                .unwrap(),
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got 'a/b/20200619/us-west-2/kinesis/aws4_request'"
        );
        assert_eq!(
            KinesisError::host_not_signed().message.unwrap(),
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        );
        assert_eq!(
            KinesisError::credential_scope_date("20150830", "20150831T222542Z")
                .message
                .unwrap(),
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
             HTTP: '20150830' != '20150831', from '20150831T222542Z'."
        );
    }

    #[test]
    fn logged_auth_messages_never_echo_the_authorization_header() {
        let header = "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=0123abcd";
        let incomplete = KinesisError::incomplete_signature_header(&["SignedHeaders"], header);
        assert!(incomplete.message.as_deref().unwrap().contains(header));
        assert_eq!(
            incomplete.log_message(),
            Some("Authorization header requires 'SignedHeaders' parameter.")
        );
        let pair = KinesisError::authorization_part_without_equals("0123abcd", header);
        assert!(!pair.log_message().unwrap().contains("0123abcd"));
        // Other texts are logged whole.
        let invalid = KinesisError::invalid_signature();
        assert_eq!(invalid.log_message(), invalid.message.as_deref());
    }
}
