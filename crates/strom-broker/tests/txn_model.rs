//! Model test of the transaction coordinator's decisions (`strom_broker::txn::state`): random
//! runs of InitProducerId, AddPartitionsToTxn, EndTxn (v1 and v2, current or stale epochs),
//! markers completing and timeouts, applied as the coordinator applies them. After every
//! step: each written state may follow the one before (Kafka's valid previous states), the
//! producer id and epoch only move forward, a prepared transaction only completes, and no
//! request from an older epoch changes anything.

use proptest::prelude::*;
use strom_broker::txn::state::*;

#[derive(Debug, Clone)]
enum Op {
    Init { with_ids: bool },
    Add { partition: i32, stale: bool },
    End { commit: bool, v2: bool, stale: bool },
    MarkersDone,
    Timeout,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<bool>().prop_map(|with_ids| Op::Init { with_ids }),
        (0..3i32, prop::bool::weighted(0.2))
            .prop_map(|(partition, stale)| Op::Add { partition, stale }),
        (any::<bool>(), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(commit, v2, stale)| Op::End { commit, v2, stale }),
        Just(Op::MarkersDone),
        Just(Op::Timeout),
    ]
}

fn check_step(before: &TxnMetadata, after: &TxnMetadata) {
    if after.state != before.state {
        assert!(
            after.state.may_follow(before.state),
            "{:?} after {:?}",
            after.state,
            before.state
        );
    }
    if after.producer_id == before.producer_id {
        assert!(
            after.producer_epoch >= before.producer_epoch,
            "epoch went back"
        );
    } else {
        assert_eq!(
            after.producer_epoch, 0,
            "a new producer id starts at epoch 0"
        );
        assert_eq!(after.previous_producer_id, before.producer_id);
    }
    match after.state {
        TxnState::Ongoing => assert!(!after.partitions.is_empty()),
        TxnState::CompleteCommit | TxnState::CompleteAbort => assert!(after.partitions.is_empty()),
        TxnState::Empty => assert!(after.partitions.is_empty() && after.start_ms == -1),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn decisions_keep_the_invariants(ops in prop::collection::vec(op(), 1..60)) {
        let mut next_pid = 100i64;
        let mut pid = || { next_pid += 1; next_pid };
        let now = 1_000;
        let Ok(Outcome::Write(mut m)) = init_producer_id(None, 1000, None, &mut pid, now) else {
            panic!("the first InitProducerId writes");
        };
        // The client's view: the ids it was last given.
        let mut client = (m.producer_id, m.producer_epoch);
        for (i, op) in ops.into_iter().enumerate() {
            let now = now + i as i64 * 100;
            let stale_ids = |stale: bool| if stale { (client.0, client.1 - 1) } else { client };
            let before = m.clone();
            let outcome = match &op {
                Op::Init { with_ids } => {
                    init_producer_id(Some(&m), 1000, with_ids.then_some(client), &mut pid, now)
                }
                Op::Add { partition, stale } => {
                    add_partitions(&m, stale_ids(*stale), &[("t".into(), *partition)], 2, now)
                }
                Op::End { commit, v2: true, stale } => end_txn_v2(&m, stale_ids(*stale), *commit, &mut pid, now),
                Op::End { commit, v2: false, stale } => end_txn_v1(&m, stale_ids(*stale), *commit, now),
                Op::MarkersDone => {
                    if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                        Ok(Outcome::Write(m.complete(now)))
                    } else {
                        Ok(Outcome::Done)
                    }
                }
                Op::Timeout => {
                    if m.timed_out(now) { Ok(Outcome::Fence(m.fence(&mut pid, now))) } else { Ok(Outcome::Done) }
                }
            };
            if matches!(before.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
                && !matches!(op, Op::MarkersDone)
            {
                prop_assert!(!matches!(outcome, Ok(Outcome::Write(_)) | Ok(Outcome::Fence(_))),
                    "a prepared transaction changed by {op:?}: {outcome:?}");
            }
            let stale = matches!(op, Op::Add { stale: true, .. } | Op::End { stale: true, v2: false, .. });
            if stale && client.1 >= 0 {
                prop_assert!(!matches!(outcome, Ok(Outcome::Write(_))), "{op:?} from an older epoch: {outcome:?}");
            }
            if let Ok(Outcome::Write(next) | Outcome::Fence(next)) = &outcome {
                check_step(&before, next);
                m = next.clone();
                match op {
                    Op::Init { .. } => client = (m.producer_id, m.producer_epoch),
                    Op::End { v2: true, .. } => client = m.completion_ids(),
                    _ => {}
                }
            }
        }
    }
}
