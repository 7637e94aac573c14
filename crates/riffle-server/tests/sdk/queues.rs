//! Queues from Rust. aws-sdk-kinesis 1.130 has no queue operations, so these tests send raw
//! requests signed with AWS's own `aws-sigv4` crate (as the SDK would sign them) to a server
//! that demands signatures, and read the JSON answers.

use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::common::*;
use crate::raw_http::exchange;

const KEY: &str = "AKIDQUEUES";
const SECRET: &str = "queue-secret";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn credentials() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("credentials");
    std::fs::write(&path, format!("{KEY} {SECRET} {ACCOUNT}\n")).expect("credentials");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    (dir, path)
}

/// One signed JSON call: (status, answer).
pub(crate) fn signed_call(server: &Server, operation: &str, body: &Value) -> (u16, Value) {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    let body = body.to_string().into_bytes();
    let host = server.addr.to_string();
    let uri = format!("http://{host}/");
    let target = format!("Kinesis_20131202.{operation}");
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let identity = Credentials::new(KEY, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("kinesis")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        "POST",
        &uri,
        headers.iter().copied(),
        SignableBody::Bytes(&body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut request = http::Request::builder().method("POST").uri(&uri);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut request = request.body(()).expect("request");
    instructions.apply_to_request_http1x(&mut request);
    let mut head = "POST / HTTP/1.1\r\n".to_string();
    for (name, value) in request.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    let response = exchange(server.addr, &bytes).expect("an answer");
    let json = if response.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&response.body).expect("JSON answer")
    };
    (response.status, json)
}

fn ok(server: &Server, operation: &str, body: Value) -> Value {
    let (status, answer) = signed_call(server, operation, &body);
    assert_eq!(status, 200, "{operation} {body}: {answer}");
    answer
}

/// An ON_DEMAND stream, ACTIVE: its ARN.
fn on_demand_stream(server: &Server, name: &str) -> String {
    ok(
        server,
        "CreateStream",
        json!({"StreamName": name, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
    );
    format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}")
}

fn put(server: &Server, stream: &str, count: usize, from: usize) {
    let records: Vec<Value> = (from..from + count)
        .map(|n| {
            json!({"PartitionKey": format!("k{}", n % 7), "Data": base64(format!("r{n}").as_bytes())})
        })
        .collect();
    let answer = ok(
        server,
        "PutRecords",
        json!({"StreamName": stream, "Records": records}),
    );
    assert_eq!(answer["FailedRecordCount"], 0, "{answer}");
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn data_of(record: &Value) -> String {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(record["Data"].as_str().unwrap())
        .unwrap();
    String::from_utf8(raw).unwrap()
}

fn receive(server: &Server, queue: &str) -> Vec<Value> {
    let answer = ok(
        server,
        "ReceiveQueueRecords",
        json!({"QueueARN": queue, "Limit": 10, "WaitTimeSeconds": 1, "VisibilityTimeoutSeconds": 60}),
    );
    answer["QueueRecords"].as_array().unwrap().clone()
}

fn acknowledge(server: &Server, queue: &str, records: &[Value]) {
    let entries: Vec<Value> = records
        .iter()
        .map(|record| json!({"ReceiptHandle": record["ReceiptHandle"]}))
        .collect();
    let answer = ok(
        server,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": queue, "Entries": entries}),
    );
    assert_eq!(answer["Failed"], json!([]), "{answer}");
}

/// Every queue operation answers a signed request, and an unsigned one is refused.
#[test]
fn every_queue_operation_answers_signed_requests() {
    let (_dir, path) = credentials();
    let server = Server::with_credentials(&path, &["--limits", "off"]);
    let stream = on_demand_stream(&server, "signed");
    let created = ok(
        &server,
        "CreateQueue",
        json!({"QueueName": "jobs", "StreamConfigurationList": [{"StreamARN": stream,
               "StartingPosition": {"Type": "TRIM_HORIZON"}}],
               "QueueAttributes": {"VisibilityTimeoutSeconds": 0,
               "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 1}},
               "Tags": {"team": "a"}}),
    );
    let queue = created["QueueDescription"]["QueueARN"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(queue.starts_with(&format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:queue/")));
    ok(&server, "DescribeQueue", json!({"QueueARN": queue}));
    let listed = ok(&server, "ListQueues", json!({}));
    assert_eq!(listed["QueueSummaries"][0]["QueueARN"], json!(queue));
    ok(
        &server,
        "UpdateQueue",
        json!({"QueueARN": queue, "QueueAttributes": {"VisibilityTimeoutSeconds": 0}}),
    );
    put(&server, "signed", 2, 0);
    let got = ok(
        &server,
        "ReceiveQueueRecords",
        json!({"QueueARN": queue, "Limit": 1, "WaitTimeSeconds": 1, "VisibilityTimeoutSeconds": 30}),
    );
    let record = &got["QueueRecords"][0];
    assert_eq!(data_of(record), "r0");
    assert_eq!(record["ReceiveCount"], 1);
    let changed = ok(
        &server,
        "UpdateQueueRecordsVisibility",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": record["ReceiptHandle"],
               "VisibilityTimeoutSeconds": 0}]}),
    );
    assert_eq!(
        changed["Successful"].as_array().unwrap().len(),
        1,
        "{changed}"
    );
    // Received once with MaxReceiveCount 1 and made visible again: a dead-letter record.
    let dead = ok(
        &server,
        "ReceiveDeadLetterQueueRecords",
        json!({"QueueARN": queue, "WaitTimeSeconds": 1, "VisibilityTimeoutSeconds": 30}),
    );
    let dead_record = &dead["QueueRecords"][0];
    assert_eq!(dead_record["RecordId"], record["RecordId"]);
    let entry =
        json!([{"ReceiptHandle": dead_record["ReceiptHandle"], "VisibilityTimeoutSeconds": 30}]);
    let moved = ok(
        &server,
        "UpdateDeadLetterQueueRecordsVisibility",
        json!({"QueueARN": queue, "Entries": entry}),
    );
    assert_eq!(moved["Failed"], json!([]), "{moved}");
    let restored = ok(
        &server,
        "RestoreDeadLetterQueueRecords",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": dead_record["ReceiptHandle"]}]}),
    );
    assert_eq!(restored["Failed"], json!([]), "{restored}");
    // Both records now visible; dead-letter the second and acknowledge it there.
    let both = receive(&server, &queue);
    assert_eq!(both.len(), 2);
    acknowledge(&server, &queue, &both[..1]);
    ok(
        &server,
        "UpdateQueueRecordsVisibility",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": both[1]["ReceiptHandle"],
               "VisibilityTimeoutSeconds": 0}]}),
    );
    let dead = ok(
        &server,
        "ReceiveDeadLetterQueueRecords",
        json!({"QueueARN": queue, "WaitTimeSeconds": 1, "VisibilityTimeoutSeconds": 30}),
    );
    let acked = ok(
        &server,
        "AcknowledgeDeadLetterQueueRecords",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": dead["QueueRecords"][0]["ReceiptHandle"]}]}),
    );
    assert_eq!(acked["Successful"].as_array().unwrap().len(), 1, "{acked}");
    ok(&server, "DeleteQueue", json!({"QueueARN": queue}));
    let (status, answer) = signed_call(&server, "DescribeQueue", &json!({"QueueARN": queue}));
    assert_eq!(
        (status, answer["__type"].as_str()),
        (400, Some("ResourceNotFoundException"))
    );
    // Without a signature nothing is answered but the refusal.
    let unsigned = crate::raw_http::call(server.addr, "ListQueues", b"{}");
    assert_eq!(unsigned.status, 400);
}

/// kill -9 while consuming: acknowledged records never come back, none is lost, in-flight
/// ones are visible again with their receive counts.
#[test]
fn queue_delivery_state_survives_kill_9() {
    let (_dir, path) = credentials();
    let data = tempfile::tempdir().expect("data dir");
    let args = ["--credentials", path.to_str().unwrap(), "--limits", "off"];
    let server = Server::on_data_dir_with(data.path(), &args);
    let stream = on_demand_stream(&server, "durable");
    put(&server, "durable", 300, 0);
    let created = ok(
        &server,
        "CreateQueue",
        json!({"QueueName": "work", "StreamConfigurationList": [{"StreamARN": stream,
               "StartingPosition": {"Type": "TRIM_HORIZON"}}]}),
    );
    let queue = created["QueueDescription"]["QueueARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut acked = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let got = receive(&server, &queue);
        acknowledge(&server, &queue, &got);
        acked.extend(got.iter().map(data_of));
    }
    let in_flight: std::collections::BTreeMap<String, u64> = receive(&server, &queue)
        .iter()
        .map(|record| (data_of(record), record["ReceiveCount"].as_u64().unwrap()))
        .collect();
    assert_eq!((acked.len(), in_flight.len()), (120, 10));
    server.kill();

    let server = Server::on_data_dir_with(data.path(), &args);
    let mut delivered = std::collections::BTreeMap::new();
    loop {
        let got = receive(&server, &queue);
        if got.is_empty() {
            break;
        }
        for record in &got {
            assert!(
                delivered
                    .insert(data_of(record), record["ReceiveCount"].as_u64().unwrap())
                    .is_none(),
                "delivered twice after the restart"
            );
        }
        acknowledge(&server, &queue, &got);
    }
    let everything: std::collections::BTreeSet<String> =
        (0..300).map(|n| format!("r{n}")).collect();
    assert!(
        delivered.keys().all(|data| !acked.contains(data)),
        "an acknowledged record came back"
    );
    let expected: std::collections::BTreeSet<String> =
        everything.difference(&acked).cloned().collect();
    assert_eq!(
        delivered
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        expected,
        "none lost"
    );
    for (data, count) in &in_flight {
        assert_eq!(delivered[data], count + 1, "{data} kept its receive count");
    }
    // The delivery state is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let queues = data.path().join("queues");
        assert_eq!(
            std::fs::metadata(&queues).unwrap().permissions().mode() & 0o077,
            0
        );
        for entry in std::fs::read_dir(&queues).unwrap() {
            let dir = entry.unwrap().path();
            for file in std::fs::read_dir(&dir).unwrap() {
                let mode = std::fs::metadata(file.unwrap().path())
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o077, 0, "{}", dir.display());
            }
        }
    }
}

/// Calls each of the 12 queue operations once (unsigned, for an anonymous server), each with
/// input AWS accepts, demanding a 200; records their names for `every_operation`.
pub(crate) fn call_every_queue_operation(
    server: &Server,
    called: &mut std::collections::BTreeSet<&'static str>,
) {
    let mut call = |operation: &'static str, body: Value| -> Value {
        let response = crate::raw_http::call(server.addr, operation, body.to_string().as_bytes());
        assert_eq!(
            response.status,
            200,
            "{operation}: {}",
            String::from_utf8_lossy(&response.body)
        );
        if operation.contains("Queue") {
            called.insert(operation);
        }
        if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&response.body).unwrap()
        }
    };
    let stream = "every-queue-op";
    call(
        "CreateStream",
        json!({"StreamName": stream, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
    );
    let stream_arn = stream_arn(stream);
    let queue = call(
        "CreateQueue",
        json!({"QueueName": "q", "StreamConfigurationList": [{"StreamARN": stream_arn,
               "StartingPosition": {"Type": "TRIM_HORIZON"}}],
               "QueueAttributes": {"DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 1}}}),
    )["QueueDescription"]["QueueARN"]
        .clone();
    call("DescribeQueue", json!({"QueueARN": queue}));
    call(
        "ListQueues",
        json!({"StreamFilter": [{"StreamARN": stream_arn}]}),
    );
    call(
        "UpdateQueue",
        json!({"QueueARN": queue, "QueueAttributes": {"VisibilityTimeoutSeconds": 10}}),
    );
    call(
        "PutRecords",
        json!({"StreamName": stream, "Records": [{"PartitionKey": "a", "Data": "YQ=="},
               {"PartitionKey": "b", "Data": "Yg=="}]}),
    );
    let got = call(
        "ReceiveQueueRecords",
        json!({"QueueARN": queue, "WaitTimeSeconds": 1}),
    );
    let records = got["QueueRecords"].as_array().unwrap().clone();
    assert_eq!(records.len(), 2, "{got}");
    call(
        "AcknowledgeQueueRecords",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": records[0]["ReceiptHandle"]}]}),
    );
    call(
        "UpdateQueueRecordsVisibility",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": records[1]["ReceiptHandle"],
               "VisibilityTimeoutSeconds": 0}]}),
    );
    let dead = call(
        "ReceiveDeadLetterQueueRecords",
        json!({"QueueARN": queue, "WaitTimeSeconds": 1}),
    );
    let handle = dead["QueueRecords"][0]["ReceiptHandle"].clone();
    assert!(handle.is_string(), "{dead}");
    call(
        "UpdateDeadLetterQueueRecordsVisibility",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": handle, "VisibilityTimeoutSeconds": 5}]}),
    );
    call(
        "RestoreDeadLetterQueueRecords",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": handle}]}),
    );
    call(
        "AcknowledgeDeadLetterQueueRecords",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": handle}]}),
    );
    call("DeleteQueue", json!({"QueueARN": queue}));
    call("DeleteStream", json!({"StreamName": stream}));
}
