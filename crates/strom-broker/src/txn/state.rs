//! One transactional id as its coordinator keeps it (Kafka's `TransactionMetadata`), and the
//! decisions on it: each request is decided against the current state, giving the next state
//! to write to `__transaction_state` (it becomes current once written), nothing to write
//! (a retry of what is done), or a Kafka error code. One decision per transactional id is in
//! flight at a time (the coordinator answers CONCURRENT_TRANSACTIONS meanwhile).
//!
//! Kafka 4's rules, protocol v2 (KIP-890 part 2: every EndTxn bumps the producer epoch, the
//! answer carries the epoch, a new producer id when the epoch runs out) and v1 (EndTxn up to
//! v4: the epoch stays). One difference: fencing an open transaction (a new InitProducerId,
//! or its timeout) bumps the epoch once where Kafka's v2 path bumps twice; either way the
//! abort markers carry an epoch the fenced producer does not have.

use std::collections::BTreeSet;

pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const INVALID_TXN_STATE: i16 = 48;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const PRODUCER_FENCED: i16 = 90;
pub const TRANSACTION_ABORTABLE: i16 = 120;

/// An epoch at or past this is exhausted: the next bump moves to a new producer id (the
/// last value stays free, so the coordinator can always fence).
pub const EXHAUSTED_EPOCH: i16 = i16::MAX - 1;

/// Kafka's `TransactionState`, with the ids `__transaction_state` stores and the names
/// DescribeTransactions and ListTransactions give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Every state, in the order of their ids.
    pub const ALL: [TxnState; 6] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ];

    /// Kafka's names of states Strom never holds (`Dead` is a tombstone,
    /// `PrepareEpochFence` a moment of a fence): filters may name them.
    pub const OTHER_NAMES: [&'static str; 2] = ["Dead", "PrepareEpochFence"];

    pub fn id(self) -> i8 {
        self as i8
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.get(usize::try_from(id).ok()?).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Whether `self` may follow `prev` (Kafka's `validPreviousStates`).
    pub fn may_follow(self, prev: TxnState) -> bool {
        use TxnState::*;
        let done = matches!(prev, Empty | CompleteCommit | CompleteAbort);
        match self {
            Empty => done,
            Ongoing => done || prev == Ongoing,
            PrepareCommit => prev == Ongoing,
            PrepareAbort => done || prev == Ongoing,
            CompleteCommit => prev == PrepareCommit,
            CompleteAbort => prev == PrepareAbort,
        }
    }

    pub fn preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    pub fn done(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// A partition of a transaction: (topic, partition).
pub type TxnPartition = (String, i32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    /// The producer id before the last change of id (-1: none).
    pub previous_producer_id: i64,
    /// The id a prepared transaction completes with, the epoch being exhausted (-1: none).
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, for recognising a retried request (not stored).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the open transaction started (-1: none).
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The client's transaction protocol: 2 bumps the epoch at every EndTxn.
    pub client_version: i16,
}

/// What a decision asks of the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Write this state, then answer from it.
    Write(TxnMetadata),
    /// Write this state (an open transaction fenced: its abort prepared), then answer
    /// CONCURRENT_TRANSACTIONS; the client asks again once the abort completes.
    Fence(TxnMetadata),
    /// Nothing to write: answer from the current state.
    Done,
}

impl TxnMetadata {
    /// A transactional id seen for the first time: a new producer id, no epoch yet.
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            client_version: 0,
        }
    }

    /// The producer id and epoch a prepared transaction completes with (EndTxn v5 answers
    /// them): the next id at epoch 0 when the epoch ran out.
    pub fn completion_ids(&self) -> (i64, i16) {
        if self.next_producer_id >= 0 {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        }
    }

    /// The markers of a prepared transaction were written: it completes.
    pub fn complete(&self, now_ms: i64) -> TxnMetadata {
        let (producer_id, producer_epoch) = self.completion_ids();
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        TxnMetadata {
            previous_producer_id: self.producer_id,
            next_producer_id: -1,
            producer_id,
            producer_epoch,
            state,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            ..self.clone()
        }
    }

    /// Whether an open transaction ran past its timeout.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && self.start_ms + i64::from(self.timeout_ms) < now_ms
    }

    /// Prepares the abort of the open transaction with a new epoch, so that the producer
    /// that opened it is fenced (a timeout, or a new InitProducerId for the same id).
    pub fn fence(&self, new_pid: impl FnOnce() -> i64, now_ms: i64) -> TxnMetadata {
        self.prepare(TxnState::PrepareAbort, true, new_pid, now_ms)
    }

    /// Ongoing (or done, for an abort with nothing added) → Prepare*; with `bump` the epoch
    /// moves on, and a next producer id is taken when it is exhausted.
    fn prepare(
        &self,
        to: TxnState,
        bump: bool,
        new_pid: impl FnOnce() -> i64,
        now_ms: i64,
    ) -> TxnMetadata {
        let mut next = self.clone();
        next.state = to;
        if bump {
            next.last_producer_epoch = self.producer_epoch;
            next.producer_epoch = self.producer_epoch.saturating_add(1);
            if self.producer_epoch >= EXHAUSTED_EPOCH {
                next.next_producer_id = new_pid();
            }
        }
        if self.state.done() {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.last_update_ms = now_ms;
        next
    }
}

/// InitProducerId for a transactional id (`current`, `None` the first time; Kafka's
/// `handleInitProducerId`). `expected`: the producer id and epoch the client had (KIP-360),
/// if any. An open transaction is fenced; a done one starts a new epoch (a new producer id
/// when the epoch is exhausted); the same request again answers the same epoch.
pub fn init_producer_id(
    current: Option<&TxnMetadata>,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    new_pid: &mut dyn FnMut() -> i64,
    now_ms: i64,
) -> Result<Outcome, i16> {
    let fresh;
    let m = match current {
        Some(m) => m,
        None => {
            fresh = TxnMetadata::new(new_pid(), timeout_ms, now_ms);
            &fresh
        }
    };
    if let Some((pid, epoch)) = expected {
        let known = m.producer_epoch == -1
            || pid == m.producer_id
            || (pid == m.previous_producer_id && epoch >= EXHAUSTED_EPOCH);
        if !known {
            return Err(PRODUCER_FENCED);
        }
    }
    if m.state.preparing() {
        return Err(CONCURRENT_TRANSACTIONS);
    }
    if m.state == TxnState::Ongoing {
        return Ok(Outcome::Fence(m.fence(new_pid, now_ms)));
    }
    let mut next = m.clone();
    let current_epoch = expected.is_none_or(|(_, e)| e == m.producer_epoch);
    if m.producer_epoch >= EXHAUSTED_EPOCH && current_epoch {
        next.previous_producer_id = m.producer_id;
        next.producer_id = new_pid();
        next.producer_epoch = 0;
        next.last_producer_epoch = if expected.is_some() {
            m.producer_epoch
        } else {
            -1
        };
    } else {
        match expected {
            None => next.last_producer_epoch = -1,
            Some((_, e)) if e == m.producer_epoch || m.producer_epoch == -1 => {
                next.last_producer_epoch = m.producer_epoch;
            }
            Some((_, e)) if e == m.last_producer_epoch => return Ok(Outcome::Done),
            Some(_) => return Err(PRODUCER_FENCED),
        }
        next.producer_epoch = m.producer_epoch + 1;
    }
    next.state = TxnState::Empty;
    next.timeout_ms = timeout_ms;
    next.partitions.clear();
    next.start_ms = -1;
    next.last_update_ms = now_ms;
    Ok(Outcome::Write(next))
}

/// The producer id and epoch a request names must be the transaction's own.
fn check_producer(m: &TxnMetadata, pid: i64, epoch: i16) -> Result<(), i16> {
    if pid != m.producer_id {
        return Err(INVALID_PRODUCER_ID_MAPPING);
    }
    if epoch != m.producer_epoch {
        return Err(PRODUCER_FENCED);
    }
    Ok(())
}

/// AddPartitionsToTxn (or, under protocol v2, a Produce or TxnOffsetCommit adding its
/// partition; `client_version` says which): the transaction is open with `partitions` in it.
pub fn add_partitions(
    m: &TxnMetadata,
    (pid, epoch): (i64, i16),
    partitions: &[TxnPartition],
    client_version: i16,
    now_ms: i64,
) -> Result<Outcome, i16> {
    check_producer(m, pid, epoch)?;
    if m.state.preparing() {
        return Err(CONCURRENT_TRANSACTIONS);
    }
    if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
        return Ok(Outcome::Done);
    }
    let mut next = m.clone();
    if m.state.done() {
        next.start_ms = now_ms;
        next.partitions.clear();
    }
    next.state = TxnState::Ongoing;
    next.partitions.extend(partitions.iter().cloned());
    next.client_version = client_version;
    next.last_update_ms = now_ms;
    Ok(Outcome::Write(next))
}

/// AddPartitionsToTxn with VerifyOnly (KIP-890 part 1, a leader checking before it appends
/// a transactional batch): per partition, 0 if in the open transaction, else
/// TRANSACTION_ABORTABLE.
pub fn verify_partitions(
    m: &TxnMetadata,
    (pid, epoch): (i64, i16),
    partitions: &[TxnPartition],
) -> Result<Vec<i16>, i16> {
    check_producer(m, pid, epoch)?;
    if m.state.preparing() {
        return Err(CONCURRENT_TRANSACTIONS);
    }
    Ok(partitions
        .iter()
        .map(|p| {
            if m.partitions.contains(p) {
                0
            } else {
                TRANSACTION_ABORTABLE
            }
        })
        .collect())
}

/// EndTxn from a protocol v2 client (EndTxn v5+; Kafka's `endTransaction`): every end bumps
/// the epoch; an abort with nothing added is allowed; a retry after the bump is recognised
/// (`Done`: answer the current ids).
pub fn end_txn_v2(
    m: &TxnMetadata,
    (pid, epoch): (i64, i16),
    commit: bool,
    new_pid: impl FnOnce() -> i64,
    now_ms: i64,
) -> Result<Outcome, i16> {
    use TxnState::*;
    let retry_on_bump = m.producer_epoch == epoch.saturating_add(1);
    let retry_on_overflow =
        m.previous_producer_id == pid && epoch == EXHAUSTED_EPOCH && m.producer_epoch == 0;
    if pid != m.producer_id && !retry_on_overflow {
        return Err(INVALID_PRODUCER_ID_MAPPING);
    }
    let retry = retry_on_bump || retry_on_overflow;
    let valid = match m.state {
        Ongoing | Empty => epoch == m.producer_epoch && pid == m.producer_id,
        PrepareCommit | PrepareAbort => retry_on_bump,
        CompleteCommit | CompleteAbort => retry || epoch == m.producer_epoch,
    };
    if !valid {
        return Err(PRODUCER_FENCED);
    }
    let to = if commit { PrepareCommit } else { PrepareAbort };
    match (m.state, commit, retry) {
        (Ongoing, _, _) => Ok(Outcome::Write(m.prepare(to, true, new_pid, now_ms))),
        (PrepareCommit, true, _) | (PrepareAbort, false, _) => Err(CONCURRENT_TRANSACTIONS),
        (CompleteCommit, true, true) | (CompleteAbort, false, true) => Ok(Outcome::Done),
        (Empty | CompleteCommit | CompleteAbort, false, false) => {
            Ok(Outcome::Write(m.prepare(to, true, new_pid, now_ms)))
        }
        _ => Err(INVALID_TXN_STATE),
    }
}

/// EndTxn from a protocol v1 client (EndTxn up to v4; Kafka's `endTransactionWithTV1`):
/// the epoch stays; ending what is already ended the same way is a retry.
pub fn end_txn_v1(
    m: &TxnMetadata,
    (pid, epoch): (i64, i16),
    commit: bool,
    now_ms: i64,
) -> Result<Outcome, i16> {
    use TxnState::*;
    check_producer(m, pid, epoch)?;
    let to = if commit { PrepareCommit } else { PrepareAbort };
    match (m.state, commit) {
        (Ongoing, _) => Ok(Outcome::Write(m.prepare(to, false, || -1, now_ms))),
        (CompleteCommit, true) | (CompleteAbort, false) => Ok(Outcome::Done),
        (PrepareCommit, true) | (PrepareAbort, false) => Err(CONCURRENT_TRANSACTIONS),
        _ => Err(INVALID_TXN_STATE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(o: Result<Outcome, i16>) -> TxnMetadata {
        match o {
            Ok(Outcome::Write(m)) | Ok(Outcome::Fence(m)) => m,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    fn pids() -> impl FnMut() -> i64 {
        let mut next = 1000;
        move || {
            next += 1;
            next
        }
    }

    #[test]
    fn a_v2_transaction_commits_with_a_new_epoch_and_a_retry_is_answered() {
        let mut pid = pids();
        let m = written(init_producer_id(None, 60_000, None, &mut pid, 1));
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.state),
            (1001, 0, TxnState::Empty)
        );
        let p = ("t".to_string(), 0);
        let m = written(add_partitions(
            &m,
            (1001, 0),
            std::slice::from_ref(&p),
            2,
            2,
        ));
        assert_eq!((m.state, m.start_ms), (TxnState::Ongoing, 2));
        assert_eq!(
            add_partitions(&m, (1001, 0), std::slice::from_ref(&p), 2, 3),
            Ok(Outcome::Done)
        );
        assert_eq!(
            verify_partitions(&m, (1001, 0), &[p.clone(), ("u".into(), 1)]),
            Ok(vec![0, 120])
        );
        let prepared = written(end_txn_v2(&m, (1001, 0), true, &mut pid, 4));
        assert_eq!(
            (prepared.state, prepared.producer_epoch),
            (TxnState::PrepareCommit, 1)
        );
        assert_eq!(
            end_txn_v2(&prepared, (1001, 0), true, &mut pid, 5),
            Err(CONCURRENT_TRANSACTIONS)
        );
        assert_eq!(
            add_partitions(&prepared, (1001, 1), std::slice::from_ref(&p), 2, 5),
            Err(CONCURRENT_TRANSACTIONS)
        );
        let done = prepared.complete(6);
        assert_eq!(
            (done.state, done.partitions.len()),
            (TxnState::CompleteCommit, 0)
        );
        assert_eq!(
            end_txn_v2(&done, (1001, 0), true, &mut pid, 7),
            Ok(Outcome::Done),
            "a retry"
        );
        assert_eq!(
            end_txn_v2(&done, (1001, 0), false, &mut pid, 7),
            Err(INVALID_TXN_STATE)
        );
        assert_eq!(
            add_partitions(&done, (1001, 0), &[p], 2, 8),
            Err(PRODUCER_FENCED),
            "old epoch"
        );
    }

    #[test]
    fn a_new_init_fences_an_open_transaction() {
        let mut pid = pids();
        let m = written(init_producer_id(None, 60_000, None, &mut pid, 1));
        let m = written(add_partitions(&m, (1001, 0), &[("t".into(), 0)], 0, 2));
        let fenced = init_producer_id(Some(&m), 60_000, None, &mut pid, 3);
        let Ok(Outcome::Fence(aborting)) = fenced else {
            panic!("{fenced:?}")
        };
        assert_eq!(
            (aborting.state, aborting.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert_eq!(
            end_txn_v1(&aborting, (1001, 0), true, 4),
            Err(PRODUCER_FENCED)
        );
        assert_eq!(
            init_producer_id(Some(&aborting), 60_000, None, &mut pid, 4),
            Err(CONCURRENT_TRANSACTIONS)
        );
        let m = written(init_producer_id(
            Some(&aborting.complete(5)),
            60_000,
            None,
            &mut pid,
            6,
        ));
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.state),
            (1001, 2, TxnState::Empty)
        );
    }

    #[test]
    fn an_exhausted_epoch_moves_to_a_new_producer_id() {
        let mut pid = pids();
        let mut m = written(init_producer_id(None, 60_000, None, &mut pid, 1));
        m.producer_epoch = EXHAUSTED_EPOCH;
        let m = written(add_partitions(
            &m,
            (1001, EXHAUSTED_EPOCH),
            &[("t".into(), 0)],
            2,
            2,
        ));
        let prepared = written(end_txn_v2(&m, (1001, EXHAUSTED_EPOCH), false, &mut pid, 3));
        assert_eq!(prepared.completion_ids(), (1002, 0));
        let done = prepared.complete(4);
        assert_eq!(
            (
                done.producer_id,
                done.producer_epoch,
                done.previous_producer_id
            ),
            (1002, 0, 1001)
        );
        let retried = end_txn_v2(&done, (1001, EXHAUSTED_EPOCH), false, &mut pid, 5);
        assert_eq!(retried, Ok(Outcome::Done), "the retry after the overflow");
    }

    #[test]
    fn v1_keeps_the_epoch_and_a_stale_client_is_fenced() {
        let mut pid = pids();
        let m = written(init_producer_id(None, 60_000, None, &mut pid, 1));
        let m = written(add_partitions(&m, (1001, 0), &[("t".into(), 0)], 0, 2));
        let prepared = written(end_txn_v1(&m, (1001, 0), false, 3));
        assert_eq!(
            (prepared.state, prepared.producer_epoch),
            (TxnState::PrepareAbort, 0)
        );
        let done = prepared.complete(4);
        assert_eq!(end_txn_v1(&done, (1001, 0), false, 5), Ok(Outcome::Done));
        assert_eq!(
            end_txn_v1(&done, (7, 0), false, 5),
            Err(INVALID_PRODUCER_ID_MAPPING)
        );
        let again = init_producer_id(Some(&done), 60_000, Some((1001, 0)), &mut pid, 6);
        let m = written(again);
        assert_eq!(m.producer_epoch, 1);
        // The same InitProducerId again (its answer was lost) gets the same epoch.
        assert_eq!(
            init_producer_id(Some(&m), 60_000, Some((1001, 0)), &mut pid, 7),
            Ok(Outcome::Done)
        );
        assert_eq!(
            init_producer_id(Some(&m), 60_000, Some((9, 0)), &mut pid, 7),
            Err(PRODUCER_FENCED)
        );
    }
}
