//! openraft's own storage test suite against `LogStore` + `StateMachineStore`, each case on
//! a fresh temp dir, log dir and `__cluster_metadata-0`.

mod common;

use common::{open_storage, TestImage};
use openraft::testing::{StoreBuilder, Suite};
use strom_log::LogDir;
use strom_raft::types::StorageError;
use strom_raft::{LogStore, StateMachineStore, TypeConfig};
use tempfile::TempDir;

/// Keeps a case's log dir and temp dir alive (the log dir is dropped first).
type Guard = (LogDir, TempDir);

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore<TestImage>, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, LogStore, StateMachineStore<TestImage>), StorageError> {
        let tmp = TempDir::new().expect("temp dir");
        let (dir, store, sm) = open_storage(tmp.path());
        Ok(((dir, tmp), store, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}

type S = Suite<TypeConfig, LogStore, StateMachineStore<TestImage>, Builder, Guard>;

/// Runs one case by name, so a failure names its case.
fn case<F, Fu>(name: &str, f: F)
where
    F: FnOnce(LogStore, StateMachineStore<TestImage>) -> Fu,
    Fu: std::future::Future<Output = Result<(), StorageError>>,
{
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let ((_d, _t), store, sm) = Builder.build().await.expect("build");
        f(store, sm).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    });
}

#[test]
fn named_cases() {
    case("last_membership_in_log", S::last_membership_in_log);
    case(
        "last_membership_in_log_multi_step",
        S::last_membership_in_log_multi_step,
    );
    case(
        "get_membership_from_log_le_sm_last_applied",
        S::get_membership_from_log_le_sm_last_applied,
    );
    case(
        "get_membership_from_log_gt_sm_last_applied_1",
        S::get_membership_from_log_gt_sm_last_applied_1,
    );
    case(
        "get_initial_state_membership_from_log_and_sm",
        S::get_initial_state_membership_from_log_and_sm,
    );
    case(
        "get_initial_state_with_state",
        S::get_initial_state_with_state,
    );
    case(
        "get_initial_state_last_log_gt_sm",
        S::get_initial_state_last_log_gt_sm,
    );
    case(
        "get_initial_state_last_log_lt_sm",
        S::get_initial_state_last_log_lt_sm,
    );
    case("get_initial_state_log_ids", S::get_initial_state_log_ids);
}
