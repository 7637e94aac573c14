//! Every Kinesis limit riffle enforces or reports, as a named constant.
//!
//! Values come from the AWS model (botocore `kinesis/2013-12-02`) and the published service quotas;
//! each constant says which. Wire-level bounds (lengths, ranges) are checked by
//! [`crate::validate`]; the rest are the domain's to enforce. Units come last in every name.

/// Records one PutRecords call may carry (model: `PutRecordsRequestEntryList` max).
pub const RECORDS_PER_PUT_MAX: usize = 500;

/// Bytes of data plus partition keys one PutRecords call may carry (10 MiB).
pub const PUT_RECORDS_BYTES_MAX: usize = 10 * 1024 * 1024;

/// Bytes of one record (data plus partition key) a stream accepts unless configured otherwise.
pub const RECORD_BYTES_DEFAULT: usize = 1024 * 1024;

/// Bytes of one record the largest `MaxRecordSizeInKiB` allows (10 MiB).
pub const RECORD_BYTES_MAX: usize = 10 * 1024 * 1024;

/// The model's bound on a `Data` blob; above it the request fails validation.
pub const DATA_BYTES_MAX: usize = 10_485_760;

/// `MaxRecordSizeInKiB` of a stream created without one.
pub const RECORD_SIZE_KIB_DEFAULT: u32 = 1024;

/// Smallest `MaxRecordSizeInKiB` (model min).
pub const RECORD_SIZE_KIB_MIN: u32 = 1024;

/// Largest `MaxRecordSizeInKiB` (model max).
pub const RECORD_SIZE_KIB_MAX: u32 = 10240;

/// Records one GetRecords call returns at most; also its default `Limit`.
pub const GET_RECORDS_LIMIT_MAX: usize = 10_000;

/// Bytes of data one GetRecords call returns at most.
pub const GET_RECORDS_BYTES_MAX: usize = 10 * 1024 * 1024;

/// How long a shard iterator stays valid after it was issued.
pub const ITERATOR_LIFETIME_MS: u64 = 300_000;

/// How long a ListShards / ListStreams `NextToken` stays valid.
pub const NEXT_TOKEN_LIFETIME_MS: u64 = 300_000;

/// Retention of a new stream.
pub const RETENTION_HOURS_DEFAULT: u32 = 24;

/// Shortest retention a stream may have.
pub const RETENTION_HOURS_MIN: u32 = 24;

/// Longest retention a stream may have (365 days).
pub const RETENTION_HOURS_MAX: u32 = 8760;

/// Characters of a stream (or consumer) name.
pub const STREAM_NAME_LEN_MAX: usize = 128;

/// Characters of a shard ID argument.
pub const SHARD_ID_LEN_MAX: usize = 128;

/// Characters of a stream ARN.
pub const STREAM_ARN_LEN_MAX: usize = 2048;

/// Characters of a partition key.
pub const PARTITION_KEY_LEN_MAX: usize = 256;

/// Characters of a shard iterator; [`crate::iterator`] stays well below it.
pub const SHARD_ITERATOR_LEN_MAX: usize = 512;

/// Characters of a `NextToken` argument (model max).
pub const NEXT_TOKEN_LEN_MAX: usize = 1_048_576;

/// Tags one stream, consumer or other resource may hold.
pub const TAGS_PER_RESOURCE_MAX: usize = 50;

/// Entries of one `Tags` map argument (model max; the per-resource cap is lower).
pub const TAGS_PER_REQUEST_MAX: usize = 200;

/// Keys of one `TagKeys` list argument.
pub const TAG_KEYS_PER_REQUEST_MAX: usize = 50;

/// Characters of a tag key.
pub const TAG_KEY_LEN_MAX: usize = 128;

/// Characters of a tag value.
pub const TAG_VALUE_LEN_MAX: usize = 256;

/// ListStreams page size without a `Limit`.
pub const LIST_STREAMS_LIMIT_DEFAULT: usize = 100;

/// Largest ListStreams `Limit` (model max).
pub const LIST_STREAMS_LIMIT_MAX: usize = 10_000;

/// ListShards page size without `MaxResults`.
pub const LIST_SHARDS_MAX_RESULTS_DEFAULT: usize = 1000;

/// Largest ListShards `MaxResults` (model max).
pub const LIST_SHARDS_MAX_RESULTS_MAX: usize = 10_000;

/// ListStreamConsumers page size without `MaxResults`.
pub const LIST_STREAM_CONSUMERS_MAX_RESULTS_DEFAULT: usize = 100;

/// Largest ListStreamConsumers `MaxResults` (model max).
pub const LIST_STREAM_CONSUMERS_MAX_RESULTS_MAX: usize = 10_000;

/// Consumers of one account that may be CREATING at once.
pub const CONSUMERS_CREATING_MAX: u32 = 5;

/// DescribeStream shard page size without a `Limit`.
pub const DESCRIBE_STREAM_LIMIT_DEFAULT: usize = 100;

/// Largest DescribeStream `Limit` (model max; the docs say 100, the model allows more).
pub const DESCRIBE_STREAM_LIMIT_MAX: usize = 10_000;

/// ListTagsForStream page size without a `Limit`: a stream holds at most this many tags, so an
/// unlimited call returns them all.
pub const LIST_TAGS_LIMIT_DEFAULT: usize = 50;

/// Largest ListTagsForStream `Limit` (model max).
pub const LIST_TAGS_LIMIT_MAX: usize = 50;

/// Shards an on-demand stream starts with (4 MiB/s of write capacity).
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;

/// Open shards per account, as AWS grants in its largest regions.
pub const SHARD_LIMIT_DEFAULT: u32 = 20_000;

/// On-demand streams per account.
pub const ON_DEMAND_STREAM_LIMIT_DEFAULT: u32 = 50;

/// Streams that may be in CREATING at once per account.
pub const STREAMS_CREATING_MAX: u32 = 5;

/// Open shards one stream may reach through UpdateShardCount.
pub const SHARDS_PER_STREAM_MAX: u32 = 10_000;

/// UpdateShardCount calls per stream per rolling 24 hours.
pub const UPDATE_SHARD_COUNT_PER_DAY_MAX: u32 = 10;

/// Enhanced fan-out consumers per stream.
pub const CONSUMERS_PER_STREAM_MAX: u32 = 20;

/// Enhanced fan-out consumers per stream in an account with On-demand Advantage (the
/// MinimumThroughputBillingCommitment account setting).
pub const CONSUMERS_PER_STREAM_ADVANTAGE_MAX: u32 = 50;

/// Warm throughput an on-demand stream may be given (UpdateStreamWarmThroughput: 10 GiB/s).
pub const WARM_THROUGHPUT_MIBPS_MAX: u32 = 10_240;

/// How long a MinimumThroughputBillingCommitment lasts at least before it can end (24 hours,
/// from the AWS SDK documentation of MinimumThroughputBillingCommitmentInput).
pub const BILLING_COMMITMENT_MIN_MS: u64 = 24 * 3_600_000;

/// Write throughput of one shard, bytes per second.
pub const SHARD_WRITE_BYTES_PER_SECOND: u64 = 1024 * 1024;

/// Write throughput of one shard, records per second.
pub const SHARD_WRITE_RECORDS_PER_SECOND: u64 = 1000;

/// Read throughput of one shard shared by all polling consumers, bytes per second.
pub const SHARD_READ_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;

/// GetRecords calls per shard per second, shared by all polling consumers.
pub const GET_RECORDS_CALLS_PER_SECOND: u32 = 5;

/// GetShardIterator calls per open shard per second.
pub const GET_SHARD_ITERATOR_CALLS_PER_SECOND: u32 = 5;

/// How long one SubscribeToShard event stream stays open.
pub const SUBSCRIPTION_LIFETIME_MS: u64 = 300_000;

/// Items a ValidationException message lists at most (Coral stops counting there).
pub const VALIDATION_ERRORS_MAX: usize = 10;
