//! Records: PutRecord(s), GetShardIterator, GetRecords and SubscribeToShard (routing, sequence
//! numbers and reads are in `data.rs`).

use super::*;

/// Where a record goes.
pub(super) enum Placement<'a> {
    /// By its ExplicitHashKey if it has one, else by the MD5 of its partition key.
    ByKey(Option<&'a str>),
    /// AUTO distribution: to this hash key (see `Stream::spread_keys`); any partition key and
    /// ExplicitHashKey the producer gave are ignored for placement, as on AWS.
    Spread(u128),
}

/// Validates one record against the stream and computes its hash key.
pub(super) fn prepare_record(
    stream_state: &crate::node::StreamState,
    partition_key: String,
    placement: Placement<'_>,
    data: Bytes,
) -> Result<(NewRecord, u128), Error> {
    control::check_record_size(stream_state, data.len() + partition_key.len())?;
    let (hash_key, explicit_hash_key) = match placement {
        Placement::Spread(hash_key) => (hash_key, None),
        Placement::ByKey(explicit) => {
            let explicit = explicit
                .map(riffle_proto::hashkey::parse_explicit_hash_key)
                .transpose()?;
            let hash_key = explicit
                .unwrap_or_else(|| riffle_proto::hashkey::partition_key_hash(&partition_key));
            (hash_key, explicit)
        }
    };
    Ok((
        NewRecord {
            partition_key,
            explicit_hash_key,
            data,
        },
        hash_key,
    ))
}

/// Whether PutRecord may take `minimum` as its SequenceNumberForOrdering: `0`, or a number
/// Kinesis could have issued, and not dated in the future (production rejects both other kinds
/// with "ExclusiveMinimumSequenceNumber … is invalid.").
pub(super) fn ordering_sequence_number_valid(minimum: &str) -> bool {
    minimum == "0"
        || riffle_proto::seqno::SeqNo::decode(minimum)
            .is_some_and(|decoded| decoded.arrival_s.saturating_mul(1000) <= now_ms())
}

/// The ValidationException for records without a partition key (`None` is PutRecord's own,
/// `Some(i)` the i-th PutRecords entry, 0-based): the model made the key optional for AUTO
/// distribution, but a stream that routes by key still needs one, in Coral's words.
pub(super) fn partition_keys_missing(records: impl IntoIterator<Item = Option<usize>>) -> Error {
    let mut validator = riffle_proto::validate::Validator::new();
    for record in records {
        let path = match record {
            Some(index) => riffle_proto::validate::Path::Member("records", index, "partitionKey"),
            None => riffle_proto::validate::Path::Field("partitionKey"),
        };
        validator.required::<()>(path, None);
    }
    validator
        .finish()
        .err()
        .unwrap_or_else(|| Error::partition_key_missing(None))
}

/// A `CREATING` stream has no shards to write to yet: AWS refuses PutRecord(s) with the
/// ResourceNotFoundException of a stream it cannot find.
pub(super) fn refuse_writes_while_creating(stream: &Stream) -> Result<(), Error> {
    if stream.is_creating() {
        return Err(Error::stream_not_found(&stream.name, &stream.account));
    }
    Ok(())
}

pub(super) async fn put_record(
    node: &Node,
    caller: &Caller,
    input: PutRecordInput,
) -> Result<PutRecordOutput, Error> {
    let started = Instant::now();
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    refuse_writes_while_creating(&stream)?;
    let state = stream.state();
    let auto = state.record_distribution == RecordDistribution::Auto;
    if auto && input.sequence_number_for_ordering.is_some() {
        return Err(Error::invalid_argument(format!(
            "SequenceNumberForOrdering is not supported for stream {} under account {} because \
             it uses the AUTO record distribution strategy.",
            stream.name, stream.account
        )));
    }
    let partition_key = match input.partition_key {
        Some(key) => key,
        None if auto => String::new(),
        None => return Err(partition_keys_missing([None])),
    };
    if let Some(minimum) = &input.sequence_number_for_ordering {
        if !ordering_sequence_number_valid(minimum) {
            return Err(Error::sequence_number_for_ordering_invalid(
                minimum,
                &stream.name,
                &stream.account,
            ));
        }
    }
    let placement = if auto {
        Placement::Spread(stream.spread_keys(1)[0])
    } else {
        Placement::ByKey(input.explicit_hash_key.as_deref())
    };
    let record = prepare_record(
        &state,
        partition_key,
        placement,
        input.data.unwrap_or_default(),
    )?;
    if input.dry_run == Some(true) {
        return Err(Error::dry_run());
    }
    let sealing = encryption::sealing(node, &stream, &state)?;
    let put = data::put_records(&stream, sealing, vec![record]).await;
    let outcome = put
        .results
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(Error::internal("Internal Service Failure".to_owned())));
    stream
        .metrics
        .put_record(put.bytes_stored, &outcome, started.elapsed());
    let outcome = outcome?;
    Ok(PutRecordOutput {
        shard_id: outcome.shard_id,
        sequence_number: outcome.sequence_number,
        encryption_type: Some(encryption::put_encryption_type(sealing)),
    })
}

pub(super) async fn put_records(
    node: &Node,
    caller: &Caller,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, Error> {
    let started = Instant::now();
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    refuse_writes_while_creating(&stream)?;
    let state = stream.state();
    let auto = state.record_distribution == RecordDistribution::Auto;
    let entries = input.records.unwrap_or_default();
    let keyless: Vec<Option<usize>> = entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.partition_key.is_none())
        .map(|(index, _)| Some(index))
        .collect();
    if !keyless.is_empty() && !auto {
        return Err(partition_keys_missing(keyless));
    }
    let request_bytes: usize = entries
        .iter()
        .map(|entry| {
            entry.data.as_ref().map_or(0, |data| data.len())
                + entry.partition_key.as_ref().map_or(0, |key| key.len())
        })
        .sum();
    if request_bytes > limits::PUT_RECORDS_BYTES_MAX {
        return Err(Error::invalid_argument(format!(
            "Records size exceeds {} MB limit",
            limits::PUT_RECORDS_BYTES_MAX / (1024 * 1024)
        )));
    }
    let mut spread = if auto {
        stream.spread_keys(entries.len())
    } else {
        Vec::new()
    }
    .into_iter();
    let mut prepared = Vec::with_capacity(entries.len());
    for entry in entries {
        let placement = match spread.next() {
            Some(hash_key) => Placement::Spread(hash_key),
            None => Placement::ByKey(entry.explicit_hash_key.as_deref()),
        };
        prepared.push(prepare_record(
            &state,
            entry.partition_key.unwrap_or_default(),
            placement,
            entry.data.unwrap_or_default(),
        )?);
    }
    if input.dry_run == Some(true) {
        return Err(Error::dry_run());
    }
    let sealing = encryption::sealing(node, &stream, &state)?;
    let put = data::put_records(&stream, sealing, prepared).await;
    stream
        .metrics
        .put_records(put.bytes_stored, &put.results, started.elapsed());
    let mut failed = 0;
    let records = put
        .results
        .into_iter()
        .map(|outcome| match outcome {
            Ok(outcome) => PutRecordsResultEntry {
                sequence_number: Some(outcome.sequence_number),
                shard_id: Some(outcome.shard_id),
                error_code: None,
                error_message: None,
            },
            Err(error) => {
                failed += 1;
                // AWS's code and text for an internal failure; its detail was logged where
                // it happened.
                let (code, message) = error.put_records_entry();
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some(code.to_owned()),
                    error_message: message.map(str::to_owned),
                }
            }
        })
        .collect();
    Ok(PutRecordsOutput {
        failed_record_count: Some(failed),
        records,
        encryption_type: Some(encryption::put_encryption_type(sealing)),
    })
}

/// The stream name and account a request addresses, for texts about a stream that does not
/// exist: the name as given, else the ARN's name and account.
pub(super) fn addressed_stream(
    caller: &Caller,
    stream_name: Option<&str>,
    stream_arn: Option<&str>,
) -> (String, String) {
    match (
        stream_name,
        stream_arn.and_then(riffle_proto::arn::parse_stream_arn),
    ) {
        (Some(name), _) => (name.to_owned(), caller.account.clone()),
        (None, Some(arn)) => (arn.name, arn.account),
        (None, None) => (String::new(), caller.account.clone()),
    }
}

pub(super) async fn get_shard_iterator(
    node: &Node,
    caller: &Caller,
    input: GetShardIteratorInput,
) -> Result<GetShardIteratorOutput, Error> {
    // AWS reads the shard argument first (`shard-7`, `7` and `shardId-000000000007` name the same
    // shard) and names the shard, not the stream, when either is missing.
    let shard_arg = input.shard_id.as_deref().unwrap_or_default();
    let ordinal = riffle_proto::shard_id::parse_shard_id(shard_arg);
    let missing_shard = |name: &str, account: &str| match ordinal {
        Some(ordinal) => {
            Error::shard_not_found(&riffle_proto::shard_id::shard_id(ordinal), name, account)
        }
        None => Error::shard_unparseable(shard_arg, name, account),
    };
    let stream = match stream_of(node, caller, &input.stream_name, &input.stream_arn) {
        Ok(stream) => stream,
        Err(error) if error.kind == riffle_proto::ErrorKind::ResourceNotFoundException => {
            let (name, account) = addressed_stream(
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            );
            return Err(missing_shard(&name, &account));
        }
        Err(error) => return Err(error),
    };
    if stream.is_creating() {
        // No shard exists yet: AWS answers as for a stream it cannot find.
        return Err(missing_shard(&stream.name, &stream.account));
    }
    let state = stream.state();
    let shard = ordinal
        .and_then(|ordinal| state.shard(ordinal))
        .ok_or_else(|| missing_shard(&stream.name, &stream.account))?;
    let start = start_at(
        &stream,
        shard,
        input.shard_iterator_type.as_deref().unwrap_or_default(),
        input.starting_sequence_number.as_deref(),
        input.timestamp,
    )?;
    throttle::admit_iterator(shard, &stream)?;
    let shard_iterator = if shard.log.stored_here() {
        data::shard_iterator(node, &stream, shard, start)?
    } else {
        data::shard_iterator_anywhere(node, &stream, shard, start).await?
    };
    if input.dry_run == Some(true) {
        return Err(Error::dry_run());
    }
    Ok(GetShardIteratorOutput {
        shard_iterator: Some(shard_iterator),
    })
}

/// Where a reader asked to start, for GetShardIterator's `ShardIteratorType` and
/// SubscribeToShard's `StartingPosition.Type` (the same five values), with AWS's texts.
pub(super) fn start_at(
    stream: &Stream,
    shard: &Shard,
    iterator_type: &str,
    sequence: Option<&str>,
    timestamp: Option<Timestamp>,
) -> Result<StartAt, Error> {
    let needs_sequence = matches!(
        iterator_type,
        "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER"
    );
    if needs_sequence != sequence.is_some() && iterator_type != "AT_TIMESTAMP" {
        return Err(Error::iterator_type_mismatch(
            iterator_type,
            sequence.is_some(),
        ));
    }
    Ok(match (iterator_type, sequence) {
        ("AT_SEQUENCE_NUMBER", Some(sequence)) => {
            StartAt::AtSequence(data::position_of(stream, shard, sequence)?)
        }
        ("AFTER_SEQUENCE_NUMBER", Some(sequence)) => {
            StartAt::AfterSequence(data::position_of(stream, shard, sequence)?)
        }
        ("TRIM_HORIZON", _) => StartAt::TrimHorizon,
        ("LATEST", _) => StartAt::Latest,
        ("AT_TIMESTAMP", _) => {
            let at_ms = timestamp
                .ok_or_else(Error::timestamp_missing)?
                .epoch_ms_u64();
            let now = now_ms();
            if at_ms > now {
                return Err(Error::timestamp_in_future(at_ms as i64, now as i64));
            }
            StartAt::AtTimestamp(at_ms)
        }
        (other, _) => {
            return Err(Error::invalid_argument(format!(
                "Unknown ShardIteratorType {other}."
            )))
        }
    })
}

/// GetRecords up to the read: the read done (a shard stored here), or left to a replica.
pub(super) fn get_records(
    node: &Node,
    caller: &Caller,
    input: GetRecordsInput,
) -> Result<(data::Reading, crate::responses::Lease), Error> {
    let limit = input
        .limit
        .map(|limit| limit.max(1) as usize)
        .unwrap_or(limits::GET_RECORDS_LIMIT_MAX);
    // An iterator names its stream within an account: the caller's, or (cross-account, as the
    // KCL does) the owner's named by StreamARN; the resource policy decides either way.
    let owner = match input.stream_arn.as_deref() {
        Some(arn) => resolve_stream(node, caller, None, Some(arn))?
            .account
            .clone(),
        None => caller.account.clone(),
    };
    // Fewer records than the full 10 MiB when the response-memory budget is short (see
    // `crate::responses`).
    let mut lease = None;
    let batch = data::get_records(
        node,
        &owner,
        input.shard_iterator.as_deref().unwrap_or_default(),
        limit,
        |stream| {
            let record_bytes_max = u64::from(stream.state().max_record_size_kib) * 1024;
            let (granted, bytes_max) = node
                .config
                .responses
                .reserve_records(limit, record_bytes_max)?;
            lease = Some(granted);
            Ok(bytes_max)
        },
        |stream| control::authorize_stream(caller, stream),
    )?;
    let lease = lease.expect("a read that returned was sized first");
    Ok((batch, lease))
}

/// GetRecords' answer from what was read (here or on a replica).
pub(super) fn records_answer(
    batch: data::ReadBatch,
    dry_run: bool,
    started: Instant,
) -> Result<GetRecordsOutput, Error> {
    if dry_run {
        return Err(Error::dry_run());
    }
    let bytes: usize = batch
        .records
        .iter()
        .map(|(_, stored)| stored.data.len() + stored.partition_key.len())
        .sum();
    let iterator_age_ms = match batch.records.last() {
        Some((_, last)) => now_ms().saturating_sub(last.arrival_ms),
        None => batch.millis_behind_latest,
    };
    batch.stream.metrics.get_records(
        &batch.shard,
        bytes as u64,
        batch.records.len() as u64,
        iterator_age_ms,
        started.elapsed(),
    );
    let records = batch
        .records
        .into_iter()
        .map(|(sequence_number, stored)| record_shape(sequence_number, stored))
        .collect();
    let child_shards = batch.next_iterator.is_none().then(|| {
        batch
            .child_shards
            .iter()
            .map(|child| child_shape(child))
            .collect()
    });
    let output = GetRecordsOutput {
        records,
        next_shard_iterator: batch.next_iterator,
        millis_behind_latest: Some(batch.millis_behind_latest),
        child_shards,
    };
    Ok(output)
}

/// SubscribeToShard: everything that can be refused is refused here, as a normal error
/// response; then the subscription streams (see `subscribe.rs`).
pub(super) async fn subscribe_to_shard(
    node: &Arc<Node>,
    caller: &Caller,
    input: SubscribeToShardInput,
) -> Result<tokio::sync::mpsc::Receiver<Bytes>, Error> {
    let found = consumers::find_by_arn(
        node,
        caller,
        input.consumer_arn.as_deref().unwrap_or_default(),
    )?;
    if consumers::status(node, &found.consumer) != ConsumerStatus::Active {
        return Err(Error::resource_in_use(format!(
            "Consumer {} is not ACTIVE, instead in state {}.",
            found.arn(),
            consumers::status(node, &found.consumer)
        )));
    }
    let shard_arg = input.shard_id.as_deref().unwrap_or_default();
    let state = found.stream.state();
    let shard = riffle_proto::shard_id::parse_shard_id(shard_arg)
        .and_then(|ordinal| state.shard(ordinal).cloned())
        .ok_or_else(|| {
            Error::shard_not_found(
                &riffle_proto::shard_id::shard_id(
                    riffle_proto::shard_id::parse_shard_id(shard_arg).unwrap_or(0),
                ),
                &found.stream.name,
                &found.stream.account,
            )
        })?;
    let starting = input.starting_position.unwrap_or_default();
    let start = start_at(
        &found.stream,
        &shard,
        starting.position_type.as_deref().unwrap_or_default(),
        starting.sequence_number.as_deref(),
        starting.timestamp,
    )?;
    let position = data::start_position_anywhere(&shard, start).await?;
    if input.dry_run == Some(true) {
        return Err(Error::dry_run());
    }
    let ticket = node
        .subscriptions
        .begin(&found.arn(), shard.meta.ordinal, node.config.limits)
        .inspect_err(|_| found.stream.metrics.subscribe_rate_exceeded.inc())?;
    found.stream.metrics.subscribe_success.inc();
    Ok(crate::subscribe::start(
        Arc::clone(node),
        found,
        shard.meta.ordinal,
        position,
        ticket,
    ))
}

/// A stored record as GetRecords and SubscribeToShard show it.
pub(crate) fn record_shape(sequence_number: String, stored: StoredRecord) -> Record {
    Record {
        sequence_number,
        approximate_arrival_timestamp: Some(timestamp(stored.arrival_ms)),
        data: stored.data,
        partition_key: stored_partition_key(&stored.partition_key),
        // AWS marks a record only when it was stored encrypted; a plain record carries no
        // EncryptionType (as before encryption existed), which also keeps reads lean.
        encryption_type: stored.encrypted.then_some(EncryptionType::Kms),
    }
}

/// A stored record's partition key as readers see it: absent for a record written without one
/// (AWS: "GetRecords and SubscribeToShard return PartitionKey as an absent (null) value for
/// records written without one"), which only AUTO distribution accepts. Keys given are never
/// empty (the model's minimum length is 1), so an empty stored key means none.
pub(crate) fn stored_partition_key(stored: &[u8]) -> Option<String> {
    (!stored.is_empty()).then(|| String::from_utf8_lossy(stored).into_owned())
}

/// A child shard as GetRecords' and SubscribeToShard's `ChildShards` show it.
pub(crate) fn child_shape(child: &Shard) -> ChildShard {
    ChildShard {
        shard_id: child.id(),
        parent_shards: [child.meta.parent, child.meta.adjacent_parent]
            .into_iter()
            .flatten()
            .map(riffle_proto::shard_id::shard_id)
            .collect(),
        hash_key_range: HashKeyRange {
            starting_hash_key: child.meta.starting_hash_key.to_string(),
            ending_hash_key: child.meta.ending_hash_key.to_string(),
        },
    }
}

/// GetRecords, encoded: built off the async workers, a few at a time
/// (`ResponseBudget::build`). The lease sized the read; it lasts until the answer is
/// encoded, when the front end leases the answer's real size.
pub(super) async fn get_records_answer(
    node: &Node,
    caller: &Caller,
    format: WireFormat,
    input: GetRecordsInput,
) -> Result<Vec<u8>, Error> {
    let responses = Arc::clone(&node.config.responses);
    let dry_run = input.dry_run == Some(true);
    let reading = responses
        .build(|| {
            let started = Instant::now();
            match get_records(node, caller, input)? {
                (data::Reading::Done(batch), _lease) => {
                    Ok::<_, Error>(Ok(encode(format, records_answer(batch, dry_run, started)?)))
                }
                (data::Reading::Remote(remote), lease) => Ok(Err((remote, lease, started))),
            }
        })
        .await?;
    match reading {
        Ok(body) => Ok(body),
        // A shard this node holds no replica of: its entries come from one that does (no
        // builder slot is held while they travel).
        Err((remote, _lease, started)) => {
            let batch = data::get_records_remote(node, remote).await?;
            responses
                .build(|| Ok::<_, Error>(encode(format, records_answer(batch, dry_run, started)?)))
                .await
        }
    }
}
