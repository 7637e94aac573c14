//! Amazon Resource Names of streams and enhanced fan-out consumers.
//!
//! Stream: `arn:aws:kinesis:{region}:{account}:stream/{name}`.
//! Consumer: `{stream ARN}/consumer/{name}:{creation epoch seconds}`; re-registering a consumer
//! of the same name gives a new ARN because the creation time differs.

use crate::validate::Pattern;

/// The partition riffle writes into the ARNs it issues.
pub const PARTITION: &str = "aws";

/// The parts of a stream ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamArn {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: String,
    pub region: String,
    /// 12 digits.
    pub account: String,
    pub name: String,
}

impl StreamArn {
    /// The ARN as text.
    pub fn to_arn(&self) -> String {
        format!(
            "arn:{}:kinesis:{}:{}:stream/{}",
            self.partition, self.region, self.account, self.name
        )
    }
}

/// The parts of a consumer ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerArn {
    pub stream: StreamArn,
    pub consumer_name: String,
    pub creation_epoch_s: u64,
}

impl ConsumerArn {
    pub fn to_arn(&self) -> String {
        consumer_arn(
            &self.stream.to_arn(),
            &self.consumer_name,
            self.creation_epoch_s,
        )
    }
}

/// A resource that TagResource and friends address by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceArn {
    Stream(StreamArn),
    Consumer(ConsumerArn),
    Queue(QueueArn),
}

/// The parts of a queue ARN: `arn:aws:kinesis:{region}:{account}:queue/{id}`, where the id is
/// made when the queue is created (not its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueArn {
    pub region: String,
    pub account: String,
    pub id: String,
}

/// The ARN of queue `id` of `account` in `region`.
pub fn queue_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:{PARTITION}:kinesis:{region}:{account}:queue/{id}")
}

/// Parses a queue ARN; `None` unless every part is well-formed.
pub fn parse_queue_arn(arn: &str) -> Option<QueueArn> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("kinesis:")?;
    let (region, rest) = rest.split_once(':')?;
    let (account, rest) = rest.split_once(':')?;
    let id = rest.strip_prefix("queue/")?;
    let valid = partition.starts_with("aws")
        && is_account(account)
        && is_name(id)
        && !region.contains(char::is_whitespace);
    valid.then(|| QueueArn {
        region: region.to_owned(),
        account: account.to_owned(),
        id: id.to_owned(),
    })
}

/// The ARN of stream `name` of `account` in `region`.
pub fn stream_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:{PARTITION}:kinesis:{region}:{account}:stream/{name}")
}

/// The ARN of consumer `consumer_name` of the stream with ARN `stream_arn`, registered at
/// `creation_epoch_s`.
pub fn consumer_arn(stream_arn: &str, consumer_name: &str, creation_epoch_s: u64) -> String {
    format!("{stream_arn}/consumer/{consumer_name}:{creation_epoch_s}")
}

/// Parses a stream ARN; `None` unless every part is well-formed (partition `aws…`, a region
/// without `:`, a 12-digit account, a valid stream name).
pub fn parse_stream_arn(arn: &str) -> Option<StreamArn> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("kinesis:")?;
    let (region, rest) = rest.split_once(':')?;
    let (account, rest) = rest.split_once(':')?;
    let name = rest.strip_prefix("stream/")?;
    let valid = partition.starts_with("aws")
        && is_account(account)
        && is_name(name)
        && !region.contains(char::is_whitespace);
    valid.then(|| StreamArn {
        partition: partition.to_owned(),
        region: region.to_owned(),
        account: account.to_owned(),
        name: name.to_owned(),
    })
}

/// Parses a consumer ARN.
pub fn parse_consumer_arn(arn: &str) -> Option<ConsumerArn> {
    let (stream, consumer) = arn.split_once("/consumer/")?;
    let stream = parse_stream_arn(stream)?;
    let (consumer_name, epoch) = consumer.rsplit_once(':')?;
    if !is_name(consumer_name) || epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(ConsumerArn {
        stream,
        consumer_name: consumer_name.to_owned(),
        creation_epoch_s: epoch.parse().ok()?,
    })
}

/// Parses the ARN of a stream or consumer.
pub fn parse_resource_arn(arn: &str) -> Option<ResourceArn> {
    if let Some(queue) = parse_queue_arn(arn) {
        return Some(ResourceArn::Queue(queue));
    }
    if arn.contains("/consumer/") {
        parse_consumer_arn(arn).map(ResourceArn::Consumer)
    } else {
        parse_stream_arn(arn).map(ResourceArn::Stream)
    }
}

fn is_account(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

fn is_name(value: &str) -> bool {
    value.len() <= crate::limits::STREAM_NAME_LEN_MAX && Pattern::Name.matches(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_arns_round_trip() {
        let arn = stream_arn("us-east-1", "123456789012", "my-stream");
        assert_eq!(
            arn,
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream"
        );
        let parsed = parse_stream_arn(&arn).unwrap();
        assert_eq!(
            parsed,
            StreamArn {
                partition: "aws".to_owned(),
                region: "us-east-1".to_owned(),
                account: "123456789012".to_owned(),
                name: "my-stream".to_owned(),
            }
        );
        assert_eq!(parsed.to_arn(), arn);
        assert!(Pattern::StreamArn.matches(&arn));
    }

    #[test]
    fn other_partitions_parse() {
        let parsed =
            parse_stream_arn("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s").unwrap();
        assert_eq!(parsed.partition, "aws-cn");
        assert_eq!(parsed.region, "cn-north-1");
    }

    #[test]
    fn malformed_stream_arns_are_rejected() {
        for arn in [
            "",
            "arn:aws:kinesis:us-east-1:123456789012:stream/",
            "arn:aws:kinesis:us-east-1:12345678901:stream/s",
            "arn:aws:kinesis:us-east-1:123456789012:streams/s",
            "arn:aws:sqs:us-east-1:123456789012:stream/s",
            "arn:gcp:kinesis:us-east-1:123456789012:stream/s",
            "arn:aws:kinesis:us-east-1:123456789012:stream/a/b",
            "arn:aws:kinesis:us-east-1:123456789012:stream/a b",
            "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1",
        ] {
            assert_eq!(parse_stream_arn(arn), None, "{arn}");
        }
        let long = format!("arn:aws:kinesis:r:123456789012:stream/{}", "a".repeat(129));
        assert_eq!(parse_stream_arn(&long), None);
    }

    #[test]
    fn consumer_arns_round_trip() {
        let stream = stream_arn("eu-west-1", "123456789012", "s");
        let arn = consumer_arn(&stream, "app-1", 1_700_000_000);
        assert_eq!(
            arn,
            "arn:aws:kinesis:eu-west-1:123456789012:stream/s/consumer/app-1:1700000000"
        );
        let parsed = parse_consumer_arn(&arn).unwrap();
        assert_eq!(parsed.stream.name, "s");
        assert_eq!(parsed.consumer_name, "app-1");
        assert_eq!(parsed.creation_epoch_s, 1_700_000_000);
        assert_eq!(parsed.to_arn(), arn);
        assert!(Pattern::ResourceArn.matches(&arn));
    }

    #[test]
    fn malformed_consumer_arns_are_rejected() {
        let stream = stream_arn("eu-west-1", "123456789012", "s");
        for tail in [
            "/consumer/app",
            "/consumer/app:",
            "/consumer/:1",
            "/consumer/a b:1",
            "/consumer/app:1x",
        ] {
            let arn = format!("{stream}{tail}");
            assert_eq!(parse_consumer_arn(&arn), None, "{arn}");
        }
        assert_eq!(parse_consumer_arn(&stream), None);
    }

    #[test]
    fn resource_arns_pick_the_kind() {
        let stream = stream_arn("eu-west-1", "123456789012", "s");
        assert!(matches!(
            parse_resource_arn(&stream),
            Some(ResourceArn::Stream(_))
        ));
        let consumer = consumer_arn(&stream, "c", 5);
        assert!(matches!(
            parse_resource_arn(&consumer),
            Some(ResourceArn::Consumer(_))
        ));
        let queue = queue_arn("r", "123456789012", "0a1b");
        assert_eq!(
            parse_resource_arn(&queue),
            Some(ResourceArn::Queue(QueueArn {
                region: "r".into(),
                account: "123456789012".into(),
                id: "0a1b".into(),
            }))
        );
        assert_eq!(parse_resource_arn("arn:aws:kinesis:r:1234:queue/q"), None);
        assert_eq!(parse_queue_arn(&stream), None);
    }
}
