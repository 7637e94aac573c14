//! Membership at run time: where replicas go, how they move, and how nodes leave.
//!
//! **Who decides.** The metadata group's leader tends the cluster once a second
//! ([`Cluster::tend`]), from the catalogue and the metadata group's voters. A node is
//! *eligible* for replicas while it is a voter that is neither being drained nor removed;
//! each shard should have `min(3, eligible nodes)` replicas, all eligible. For a shard that
//! has fewer, or a replica on a node being drained, the leader asks the shard group's leader
//! to [reconfigure](Cluster::reconfigure_here) it: drop the drained nodes, and add the least
//! loaded eligible nodes (see [`crate::placement`]), each first opened empty on its node
//! (`OpenReplica`), added as a learner, caught up through the log (a shard's log is never
//! purged by snapshots, so a new replica receives every record), then made a voter with the
//! others in one membership change. Only once the shard group committed its new voters does
//! the leader record them in the catalogue (`SetShardReplicas`), and only then does a node
//! moved off the shard stop its group and remove its copy, so the catalogue never names a
//! replica that lacks the data, and no copy is removed while it may be needed. A round that
//! does not finish (a new replica still catching up, a leader handing over) is taken up by
//! the next one, whichever node leads then: a reconfiguration starts from the group's current
//! membership, so a repeated request converges instead of adding again.
//!
//! **Balance.** Once every shard has its replicas and no node is being drained, the leader
//! moves one replica per round toward balance ([`placement::rebalance_step`]): while the most
//! loaded node holds two replicas of open shards more than the least loaded (a node that
//! joined a cluster whose shards were all fully replicated holds none), a shard of the first
//! gets a replica on the second (the same reconfiguration, so it is caught up first), and
//! the round after drops the shard's replica on its most loaded node. A shard never has
//! fewer replicas than it should in between, only one more.
//!
//! **Leaving and removing.** `riffle cluster leave` (on the node that leaves) and `riffle
//! cluster remove ID` (on any node, for a dead one) both propose `NodeLeaving`: the node gets
//! no new replica, a shard it leads hands its leadership to another replica first, and its
//! replicas move as above. Once no shard names it, the leader records `NodeRemoved` and then
//! drops it from the metadata group (handing the catalogue's leadership over first if it is
//! the one leaving). The leaving node learns it is out by asking the others, records `left`
//! in `DATA/cluster.json`, stops its groups and answers API calls with an error.
//!
//! **A removed node that starts again** (it was dead when removed, or it left and was
//! restarted) refuses to start: its identity says `left`, or, before it serves, a member
//! answers that the catalogue lists it as removed. It deletes nothing (its data directory
//! stays as it was, for the operator to inspect or delete) and serves nothing (its copies
//! may be stale, and its id is not a member any more). Nodes refuse to add a removed id
//! again; an empty data directory joins as a new node with a new id.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::*;
use crate::network::ClusterSecret;
use crate::placement;
use crate::RiffleRaft;

/// How often the metadata group's leader tends membership.
const TEND_INTERVAL: Duration = Duration::from_secs(1);
/// How long one reconfiguration waits for new replicas to catch up before it answers
/// `Pending` (the next round asks again while they go on catching up).
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);
/// How long a reconfiguration request may take (the catch-up wait and two membership
/// changes).
const RECONFIGURE_TIMEOUT: Duration = Duration::from_secs(30);
/// How far an operator request's time may be from this node's clock: a request replayed
/// later than this is refused.
const ADMIN_SKEW_MS: u64 = 300_000;
/// The header carrying an operator request's proof of the cluster secret.
pub const ADMIN_PROOF_HEADER: &str = "x-riffle-cluster-proof";
/// The header carrying an operator read's time (ms since the epoch), which its proof covers.
pub const ADMIN_AT_HEADER: &str = "x-riffle-cluster-at";

/// The body of `POST /cluster/leave` and `POST /cluster/remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminRequest {
    /// The node to remove (`remove` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// When the request was made (ms since the epoch), so that a copy replayed much later is
    /// refused.
    pub at_ms: u64,
}

/// The proof an operator request carries: hex of HMAC-SHA256 under the cluster secret of
/// the request's path and body. Only holders of the secret (the nodes' operators) can drain
/// or remove nodes, even where the API port itself needs no credentials.
pub fn admin_proof(secret: &ClusterSecret, path: &str, body: &[u8]) -> String {
    secret
        .mac(&[b"riffle cluster admin v1\0", path.as_bytes(), b"\0", body])
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The headers of an operator read of `path` (`GET /cluster/status` on a node that has
/// `--credentials`): its time and the proof of the cluster secret over the path and that time.
pub fn read_proof_headers(secret: &ClusterSecret, path: &str) -> [(&'static str, String); 2] {
    let at = crate::types::now_ms().to_string();
    let proof = admin_proof(secret, path, at.as_bytes());
    [(ADMIN_AT_HEADER, at), (ADMIN_PROOF_HEADER, proof)]
}

/// Checks an operator read's headers (see [`read_proof_headers`]): the proof must verify and
/// the time be within five minutes of this node's clock, so a copy of the headers is
/// useless later.
pub(crate) fn check_read_proof(
    secret: &ClusterSecret,
    path: &str,
    at_ms: Option<&str>,
    proof: Option<&str>,
) -> Result<(), String> {
    let (Some(at), Some(proof)) = (at_ms, proof) else {
        return Err(format!(
            "{path} needs the {ADMIN_AT_HEADER} and {ADMIN_PROOF_HEADER} headers made with the \
             cluster secret on a node with --credentials (riffle cluster status sends them when \
             it can read the cluster's secret file; pass --cluster-secret-file if it is elsewhere)"
        ));
    };
    if !verify_admin(secret, path, at.as_bytes(), proof) {
        return Err(format!(
            "{path}: the {ADMIN_PROOF_HEADER} header was not made with this cluster's secret"
        ));
    }
    let at: u64 = at
        .parse()
        .map_err(|_| format!("{ADMIN_AT_HEADER} is not a time in milliseconds"))?;
    if crate::types::now_ms().abs_diff(at) > ADMIN_SKEW_MS {
        return Err("the request's time is more than 5 minutes from this node's clock".into());
    }
    Ok(())
}

fn verify_admin(secret: &ClusterSecret, path: &str, body: &[u8], proof: &str) -> bool {
    let Some(proof) = decode_hex(proof) else {
        return false;
    };
    secret.verify(
        &[b"riffle cluster admin v1\0", path.as_bytes(), b"\0", body],
        &proof,
    )
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

fn json_error(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// Starts the tending loop: every second, the metadata leader places and moves replicas and
/// drops removed nodes, and a node being drained watches for the end of its leaving.
pub(super) fn start(cluster: &Arc<Cluster>) {
    let weak = Arc::downgrade(cluster);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TEND_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            if cluster.has_left() {
                return;
            }
            cluster.retire_orphans().await;
            cluster.watch_own_leaving().await;
            if cluster.leads_meta() {
                cluster.tend().await;
            }
        }
    });
}

impl Cluster {
    /// Whether this node left the cluster.
    pub fn has_left(&self) -> bool {
        self.left.load(Ordering::Acquire)
    }

    fn leads_meta(&self) -> bool {
        !self.has_left() && self.meta.metrics().borrow_watched().current_leader == Some(self.id)
    }

    /// Nodes that take no new replica: being drained, or removed.
    pub(super) fn draining(&self) -> Vec<u64> {
        self.meta_view.read(|catalogue| {
            catalogue
                .nodes_leaving
                .iter()
                .chain(&catalogue.nodes_removed)
                .copied()
                .collect()
        })
    }

    /// The voters that may hold replicas.
    pub(super) fn eligible_nodes(&self) -> Vec<u64> {
        let draining = self.draining();
        let mut nodes: Vec<u64> = self
            .voters()
            .into_iter()
            .filter(|id| !draining.contains(id))
            .collect();
        nodes.sort_unstable();
        nodes
    }

    /// One round of the metadata leader's care (see the module docs).
    async fn tend(&self) {
        let catalogue = self.meta_view.catalogue();
        let eligible = self.eligible_nodes();
        let want = placement::wanted(eligible.len());
        let shards: Vec<(String, ShardMeta)> = catalogue
            .streams
            .values()
            .flat_map(|entry| {
                entry
                    .meta
                    .shards
                    .iter()
                    .map(|shard| (entry.meta.dir_id.clone(), shard.clone()))
            })
            .collect();
        let mut settled = true;
        for (dir_id, shard) in shards {
            let remove: Vec<u64> = shard
                .replicas
                .iter()
                .copied()
                .filter(|id| !eligible.contains(id))
                .collect();
            let staying = shard.replicas.len() - remove.len();
            if want == 0 || (remove.is_empty() && staying >= want) {
                continue;
            }
            settled = false;
            let candidates = placement::candidates(&catalogue, &eligible, &shard.replicas);
            let answer = self
                .reconfigure_anywhere(&dir_id, &shard, &remove, &candidates, want.max(staying))
                .await;
            self.record_reconfigured(&dir_id, &shard, answer, "").await;
            if !self.leads_meta() {
                return;
            }
        }
        if settled && catalogue.nodes_leaving.is_empty() {
            self.rebalance(&eligible).await;
        }
        // Drained nodes that hold nothing any more are gone for good.
        for id in &catalogue.nodes_leaving {
            let holds = catalogue.streams.values().any(|entry| {
                entry
                    .meta
                    .shards
                    .iter()
                    .any(|shard| shard.replicas.contains(id))
            });
            if !holds {
                tracing::info!(node = id, "a drained node holds no replica any more");
                if let Err(error) = self
                    .propose_anywhere(Command::NodeRemoved { id: *id })
                    .await
                {
                    tracing::warn!(%error, "could not record a node's removal");
                }
            }
        }
        let catalogue_removed = self
            .meta_view
            .read(|catalogue| catalogue.nodes_removed.clone());
        let members = self.members();
        for id in catalogue_removed {
            if members.contains_key(&id) {
                self.drop_member(id).await;
            }
        }
    }

    /// Takes one step toward balance once every shard has its replicas on `eligible` nodes
    /// and none is being drained ([`placement::rebalance_step`]): one replica added or
    /// dropped per round, recorded once the shard's group committed it.
    async fn rebalance(&self, eligible: &[u64]) {
        let catalogue = self.meta_view.catalogue();
        let Some(step) = placement::rebalance_step(&catalogue, eligible) else {
            return;
        };
        let (dir_id, ordinal) = match &step {
            placement::Rebalance::Grow {
                dir_id, ordinal, ..
            }
            | placement::Rebalance::Shrink {
                dir_id, ordinal, ..
            } => (dir_id.clone(), *ordinal),
        };
        let Some(shard) = catalogue
            .streams
            .values()
            .find(|entry| entry.meta.dir_id == dir_id)
            .and_then(|entry| entry.meta.shards.iter().find(|s| s.ordinal == ordinal))
            .cloned()
        else {
            return;
        };
        let (remove, candidates, want) = match &step {
            placement::Rebalance::Grow { to, .. } => {
                (Vec::new(), vec![*to], shard.replicas.len() + 1)
            }
            placement::Rebalance::Shrink { drop, .. } => {
                (vec![*drop], Vec::new(), shard.replicas.len() - 1)
            }
        };
        let answer = self
            .reconfigure_anywhere(&dir_id, &shard, &remove, &candidates, want)
            .await;
        self.record_reconfigured(&dir_id, &shard, answer, " toward balance")
            .await;
    }

    /// Records in the catalogue the voters a reconfiguration of `shard` committed
    /// (`SetShardReplicas`), when they changed; logs one that goes on or failed (the next
    /// round asks again). A grow whose new node could not open the shard answers the same
    /// voters: nothing to record. `why` ends the log lines (`" toward balance"`).
    async fn record_reconfigured(
        &self,
        dir_id: &str,
        shard: &ShardMeta,
        answer: Result<Option<Vec<u64>>, String>,
        why: &str,
    ) {
        match answer {
            Ok(Some(mut voters)) => {
                voters.sort_unstable();
                if voters == shard.replicas {
                    return;
                }
                tracing::info!(
                    stream = %dir_id,
                    ordinal = shard.ordinal,
                    from = ?shard.replicas,
                    to = ?voters,
                    "a shard's replicas moved{why}"
                );
                let command = Command::SetShardReplicas {
                    dir_id: dir_id.to_owned(),
                    ordinal: shard.ordinal,
                    replicas: voters,
                };
                if let Err(error) = self.propose_anywhere(command).await {
                    tracing::warn!(%error, "could not record a shard's new replicas");
                }
            }
            Ok(None) => {}
            Err(reason) => tracing::debug!(
                stream = %dir_id,
                ordinal = shard.ordinal,
                %reason,
                "a shard's replicas could not move{why} this round"
            ),
        }
    }

    /// Takes removed node `id` out of the metadata group (on its leader). The leader does not
    /// remove itself: it hands the leadership to a caught-up voter, which does.
    async fn drop_member(&self, id: u64) {
        if id == self.id {
            let target = {
                let metrics = self.meta.metrics();
                let metrics = metrics.borrow_watched();
                caught_up_voter(&metrics, &[self.id])
            };
            if let Some(target) = target {
                tracing::info!(
                    to = target,
                    "handing the catalogue's leadership over before leaving"
                );
                let _ = self.meta.trigger().transfer_leader(target).await;
            }
            return;
        }
        let change = if self.voters().contains(&id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        let addr = self.addr_of(id);
        match self.meta.change_membership(change, false).await {
            Ok(_) => {
                tracing::info!(node = id, "removed a node from the metadata group");
                if let Some(addr) = addr {
                    self.network.client().forget(&addr);
                }
            }
            Err(error) => tracing::warn!(node = id, %error, "could not remove a node yet"),
        }
    }

    /// Sends a reconfiguration of `shard` to its group's leader, wherever it is: `Some` with
    /// the new voters once the group committed them, `None` while the change goes on.
    async fn reconfigure_anywhere(
        &self,
        dir_id: &str,
        shard: &ShardMeta,
        remove: &[u64],
        candidates: &[u64],
        want: usize,
    ) -> Result<Option<Vec<u64>>, String> {
        let request = encode(&AppRequest::Reconfigure {
            stream: dir_id.to_owned(),
            ordinal: shard.ordinal,
            remove: remove.to_vec(),
            candidates: candidates.to_vec(),
            want: u32::try_from(want).unwrap_or(u32::MAX),
        })?;
        // A few hops: a replica that is not the leader names the one it knows.
        let mut last = String::from("no replica answered");
        for attempt in 1..=2 * shard.replicas.len().max(1) {
            let Some(leader) = self.shard_leader(dir_id, shard.ordinal, attempt).await else {
                return Err("the shard's group has no leader".into());
            };
            let answer = if leader == self.id {
                self.reconfigure_here(dir_id, shard.ordinal, remove, candidates, want)
                    .await?
            } else {
                let Some(addr) = self.addr_in_shard(dir_id, shard.ordinal, leader) else {
                    return Err(format!("no address for node {leader}"));
                };
                match self
                    .network
                    .call(&addr, request.clone(), RECONFIGURE_TIMEOUT)
                    .await
                {
                    Ok(bytes) => decode::<AppResponse>(&bytes)?,
                    Err(error) => {
                        self.forget_leader(dir_id, shard.ordinal);
                        last = error.to_string();
                        continue;
                    }
                }
            };
            self.note_leader(dir_id, shard.ordinal, &answer);
            match answer {
                AppResponse::Reconfigured { voters } => return Ok(Some(voters)),
                AppResponse::Pending(reason) => {
                    tracing::debug!(stream = %dir_id, ordinal = shard.ordinal, %reason, "a shard's reconfiguration goes on");
                    return Ok(None);
                }
                AppResponse::NotLeader { .. } => last = "not the leader".into(),
                AppResponse::Failed(reason) => return Err(reason),
                other => return Err(format!("unexpected answer {other:?}")),
            }
        }
        Err(last)
    }

    /// Reconfigures a shard's group on its leader (see the module docs): the voters become
    /// the current ones less `remove`, plus nodes of `candidates` (in order, skipping any that
    /// cannot open the shard) until there are `want`.
    pub(super) async fn reconfigure_here(
        &self,
        stream: &str,
        ordinal: u32,
        remove: &[u64],
        candidates: &[u64],
        want: usize,
    ) -> Result<AppResponse, String> {
        let Some(open) = self.shard(stream, ordinal) else {
            return Ok(AppResponse::NotLeader { leader: None });
        };
        let (leader, voters, learners) = {
            let metrics = open.raft.metrics();
            let metrics = metrics.borrow_watched();
            let membership = metrics.membership_config.membership();
            (
                metrics.current_leader,
                membership.voter_ids().collect::<BTreeSet<u64>>(),
                membership.learner_ids().collect::<BTreeSet<u64>>(),
            )
        };
        if leader != Some(self.id) {
            return Ok(AppResponse::NotLeader { leader });
        }
        let staying: BTreeSet<u64> = voters
            .iter()
            .copied()
            .filter(|id| !remove.contains(id))
            .collect();
        let leaving = remove.contains(&self.id);
        if leaving {
            // A leader being moved off hands its leadership to a caught-up replica that
            // stays, which then makes the change; without one, it first adds the new
            // replicas itself (staying a voter until a successor has everything).
            let target = {
                let metrics = open.raft.metrics();
                let metrics = metrics.borrow_watched();
                caught_up_voter(&metrics, remove)
            };
            if let Some(target) = target {
                let _ = open.raft.trigger().transfer_leader(target).await;
                return Ok(AppResponse::Pending(format!(
                    "handing the leadership to node {target}"
                )));
            }
        }
        let mut target = staying.clone();
        let mut added = Vec::new();
        for candidate in candidates {
            if target.len() >= want {
                break;
            }
            if target.contains(candidate) || remove.contains(candidate) {
                continue;
            }
            // Opening is asked again of a node already added as a learner: it may have
            // restarted since, and a node opens only the groups the catalogue names it in.
            let joined = self
                .add_learner(
                    &open,
                    stream,
                    ordinal,
                    *candidate,
                    learners.contains(candidate),
                )
                .await;
            if let Err(reason) = joined {
                tracing::debug!(node = candidate, %reason, "a node could not take a replica");
                continue;
            }
            target.insert(*candidate);
            added.push(*candidate);
        }
        if leaving {
            target.insert(self.id);
        }
        if !added.is_empty() {
            let goal = open.raft.metrics().borrow_watched().last_log_index;
            let waited = open
                .raft
                .wait(Some(CATCH_UP_WAIT))
                .metrics(
                    |metrics| {
                        metrics.replication.as_ref().is_some_and(|replication| {
                            added.iter().all(|id| {
                                replication.get(id).is_some_and(|matched| {
                                    matched.as_ref().map(|log_id| log_id.index) >= goal
                                })
                            })
                        })
                    },
                    "new replicas caught up",
                )
                .await;
            if waited.is_err() {
                return Ok(AppResponse::Pending(format!(
                    "new replicas {added:?} are catching up"
                )));
            }
        }
        if target != voters {
            if target.is_empty() {
                return Err("a shard group cannot lose its last voter".into());
            }
            open.raft
                .change_membership(ChangeMembers::ReplaceAllVoters(target.clone()), false)
                .await
                .map_err(|error| format!("the membership change failed: {error}"))?;
        }
        if leaving {
            return Ok(AppResponse::Pending(
                "new replicas added; the leadership moves next".into(),
            ));
        }
        Ok(AppResponse::Reconfigured {
            voters: target.into_iter().collect(),
        })
    }

    /// Has node `id` open the shard (empty, if it never held it), then adds it to the group
    /// as a learner unless it is one already.
    async fn add_learner(
        &self,
        open: &OpenShard,
        stream: &str,
        ordinal: u32,
        id: u64,
        already: bool,
    ) -> Result<(), String> {
        let addr = self
            .addr_of(id)
            .ok_or_else(|| format!("no address for node {id}"))?;
        let meta = self
            .meta_view
            .read(|catalogue| catalogue_shard(catalogue, stream, ordinal).cloned())
            .ok_or("the catalogue no longer has the shard")?;
        let meta_json = serde_json::to_string(&meta).map_err(|error| error.to_string())?;
        let request = encode(&AppRequest::OpenReplica {
            stream: stream.to_owned(),
            meta_json,
        })?;
        let bytes = self
            .network
            .call(&addr, request, CALL_TIMEOUT)
            .await
            .map_err(|error| error.to_string())?;
        match decode::<AppResponse>(&bytes)? {
            AppResponse::Opened => {}
            AppResponse::Failed(reason) => return Err(reason),
            other => return Err(format!("unexpected answer {other:?}")),
        }
        if already {
            return Ok(());
        }
        open.raft
            .add_learner(id, ClusterNode { addr }, false)
            .await
            .map_err(|error| format!("cannot add node {id} as a learner: {error}"))?;
        Ok(())
    }

    /// Stops the groups of shards this node was moved off whose removal reached it after
    /// the catalogue did (see [`Cluster::open_shard_group`]).
    async fn retire_orphans(&self) {
        let open: Vec<(String, u32)> = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for (stream, ordinal) in open {
            let named = self.meta_view.read(|catalogue| {
                catalogue_shard(catalogue, &stream, ordinal)
                    .map(|shard| shard.replicas.contains(&self.id))
            });
            if named == Some(true) {
                if let Some(shard) = self.shard(&stream, ordinal) {
                    shard.joining.store(false, Ordering::Release);
                }
            }
            // A shard the catalogue no longer has is the node's to remove with its stream.
            if named != Some(false) {
                continue;
            }
            let _opening = self.opening.lock().await;
            let Some(shard) = self.shard(&stream, ordinal) else {
                continue;
            };
            if !self.counted_in(&shard) {
                self.retire(&stream, ordinal).await;
            }
        }
    }

    /// What this node knows of node `id`.
    pub(super) fn member_state(&self, id: u64) -> AppResponse {
        AppResponse::MemberState {
            member: self.members().contains_key(&id),
            removed: self
                .meta_view
                .read(|catalogue| catalogue.nodes_removed.contains(&id)),
        }
    }

    /// Asks the other members what they know of node `id`: `Some(true)` if one says it was
    /// removed and is no member, `Some(false)` if one answered otherwise, `None` if none
    /// answered.
    async fn ask_if_removed(&self, id: u64) -> Option<bool> {
        let request = encode(&AppRequest::MemberState { id }).ok()?;
        let mut answered = None;
        for (member, node) in self.members() {
            if member == self.id || node.addr.is_empty() {
                continue;
            }
            let Ok(bytes) = self
                .network
                .call(&node.addr, request.clone(), Duration::from_secs(2))
                .await
            else {
                continue;
            };
            if let Ok(AppResponse::MemberState { member, removed }) = decode(&bytes) {
                if removed && !member {
                    return Some(true);
                }
                answered = Some(false);
            }
        }
        answered
    }

    /// At a start: refuses to go on if the other members say this node was removed (see the
    /// module docs). Nothing is changed on disk but the identity's `left` mark.
    pub(super) async fn refuse_if_removed(&self) -> io::Result<()> {
        let initialized = self
            .meta
            .is_initialized()
            .await
            .map_err(|error| io::Error::other(error.to_string()))?;
        if !initialized {
            return Ok(());
        }
        // The group's metrics name its members once its core has loaded the log.
        self.wait_for_members().await;
        if self.ask_if_removed(self.id).await != Some(true) {
            return Ok(());
        }
        let _ = self.meta.shutdown().await;
        self.record_left().await;
        Err(io::Error::other(format!(
            "this node (id {}) was removed from the cluster while it was away, so it serves \
             nothing and its data directory is kept as it is; to make this machine a member \
             again, start it with an empty --data-dir and --join",
            self.id
        )))
    }

    /// While this node is being drained: once another member says it is out, it has left.
    async fn watch_own_leaving(&self) {
        let draining = self.meta_view.read(|catalogue| {
            catalogue.nodes_leaving.contains(&self.id) || catalogue.nodes_removed.contains(&self.id)
        });
        if !draining || self.ask_if_removed(self.id).await != Some(true) {
            return;
        }
        tracing::info!(
            id = self.id,
            "this node has left the cluster: its replicas are on other nodes; it serves \
             nothing from now on and refuses to start again"
        );
        self.left.store(true, Ordering::Release);
        self.record_left().await;
        let open: Vec<(String, u32)> = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for (stream, ordinal) in open {
            self.close(&stream, &[ordinal]);
        }
        let _ = self.meta.shutdown().await;
        self.network.client().close_all();
    }

    /// Writes `left` into `DATA/cluster.json`.
    async fn record_left(&self) {
        let identity = {
            let mut identity = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
            identity.left = true;
            identity.clone()
        };
        let dir = self.data_dir.clone();
        let stored = tokio::task::spawn_blocking(move || identity.store(&dir)).await;
        if !matches!(stored, Ok(Ok(()))) {
            tracing::error!("could not record in cluster.json that this node left the cluster");
        }
    }

    /// `POST /cluster/leave` and `/cluster/remove` (see [`admin_proof`]).
    pub(super) async fn admin_call(
        &self,
        path: &str,
        body: &[u8],
        proof: Option<&str>,
    ) -> (u16, String) {
        if !proof.is_some_and(|proof| verify_admin(self.network.secret(), path, body, proof)) {
            return (
                403,
                json_error(&format!(
                    "{path} needs the {ADMIN_PROOF_HEADER} header made with the cluster \
                     secret (riffle cluster leave/remove send it)"
                )),
            );
        }
        let request: AdminRequest = match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(error) => return (400, json_error(&format!("unreadable request: {error}"))),
        };
        if crate::types::now_ms().abs_diff(request.at_ms) > ADMIN_SKEW_MS {
            return (
                400,
                json_error("the request's time is more than 5 minutes from this node's clock"),
            );
        }
        let id = match (path, request.node) {
            ("/cluster/leave", None) => self.id,
            ("/cluster/remove", Some(id)) => id,
            ("/cluster/leave" | "/cluster/remove", _) => {
                return (
                    400,
                    json_error("leave names no node; remove names the node to remove"),
                )
            }
            _ => return (404, json_error(&format!("no such cluster request: {path}"))),
        };
        if self.has_left() {
            return (409, json_error("this node has left the cluster"));
        }
        match self.start_leaving(id).await {
            Ok(answer) => (202, answer),
            Err((status, reason)) => (status, json_error(&reason)),
        }
    }

    /// Proposes that node `id` be drained; answers the JSON to return.
    async fn start_leaving(&self, id: u64) -> Result<String, (u16, String)> {
        let (leaving, removed) = self.meta_view.read(|catalogue| {
            (
                catalogue.nodes_leaving.clone(),
                catalogue.nodes_removed.clone(),
            )
        });
        if removed.contains(&id) {
            return Ok(serde_json::json!({ "node": id, "removed": true }).to_string());
        }
        let voters = self.voters();
        if !voters.contains(&id) {
            return Err((
                404,
                format!("node {id} is not a voting member of this cluster (members: {voters:?})"),
            ));
        }
        let staying = voters
            .iter()
            .filter(|voter| **voter != id && !leaving.contains(voter))
            .count();
        if staying == 0 {
            return Err((
                409,
                format!("node {id} is the cluster's last node; it cannot leave it"),
            ));
        }
        self.propose_anywhere(Command::NodeLeaving { id })
            .await
            .map_err(|error| (503, error.to_string()))?;
        Ok(serde_json::json!({ "node": id, "leaving": true }).to_string())
    }
}

/// A voter of the group `metrics` describes (this node leads it) that has every entry and is
/// not in `exclude`.
fn caught_up_voter(metrics: &openraft::RaftMetrics<RiffleRaft>, exclude: &[u64]) -> Option<u64> {
    let replication = metrics.replication.as_ref()?;
    metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|id| !exclude.contains(id))
        .find(|id| {
            replication.get(id).is_some_and(|matched| {
                matched.as_ref().map(|log_id| log_id.index) == metrics.last_log_index
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_proof_covers_path_and_body_and_needs_the_secret() {
        let secret = ClusterSecret::from_bytes(&[b'a'; 40]).unwrap();
        let other = ClusterSecret::from_bytes(&[b'b'; 40]).unwrap();
        let body = br#"{"at_ms":1}"#;
        let proof = admin_proof(&secret, "/cluster/leave", body);
        assert!(verify_admin(&secret, "/cluster/leave", body, &proof));
        assert!(!verify_admin(&other, "/cluster/leave", body, &proof));
        assert!(!verify_admin(&secret, "/cluster/remove", body, &proof));
        assert!(!verify_admin(
            &secret,
            "/cluster/leave",
            br#"{"at_ms":2}"#,
            &proof
        ));
        assert!(!verify_admin(&secret, "/cluster/leave", body, "zz"));
        assert!(!verify_admin(&secret, "/cluster/leave", body, &proof[..10]));
    }

    #[test]
    fn a_read_proof_needs_the_secret_and_a_current_time() {
        let secret = ClusterSecret::from_bytes(&[b'a'; 40]).unwrap();
        let other = ClusterSecret::from_bytes(&[b'b'; 40]).unwrap();
        let path = "/cluster/status";
        let [(_, at), (_, proof)] = read_proof_headers(&secret, path);
        assert_eq!(
            check_read_proof(&secret, path, Some(&at), Some(&proof)),
            Ok(())
        );
        assert!(check_read_proof(&other, path, Some(&at), Some(&proof)).is_err());
        assert!(check_read_proof(&secret, "/cluster/other", Some(&at), Some(&proof)).is_err());
        assert!(check_read_proof(&secret, path, None, Some(&proof)).is_err());
        assert!(check_read_proof(&secret, path, Some(&at), None).is_err());
        // A copy of an old read's headers, proof and all, is refused.
        let old = (crate::types::now_ms() - ADMIN_SKEW_MS - 1_000).to_string();
        let old_proof = admin_proof(&secret, path, old.as_bytes());
        let refused = check_read_proof(&secret, path, Some(&old), Some(&old_proof));
        assert!(refused.unwrap_err().contains("5 minutes"));
    }
}
