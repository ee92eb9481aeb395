//! DescribeLogDirs: each log dir, its partitions' sizes, and its disk's space.

use crate::broker::Broker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let mut response = DescribeLogDirsResponse::default();
    let hosted = broker.replicas.all();
    for dir in broker.replicas.log_dirs() {
        let mut result = DescribeLogDirsResult::default();
        result.log_dir = StrBytes::from_string(dir.path().display().to_string());
        let (total, usable) = disk_space(dir.path());
        result.total_bytes = total;
        result.usable_bytes = usable;
        if dir.is_offline() {
            result.error_code =
                crate::error::code(kafka_protocol::error::ResponseError::KafkaStorageError);
        }
        let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
        for p in &hosted {
            let here = p.is_in(dir);
            let wanted = match &req.topics {
                None => true,
                Some(ts) => ts
                    .iter()
                    .any(|t| t.topic.0.as_str() == &*p.topic && t.partitions.contains(&p.index)),
            };
            if here && wanted {
                let mut d = DescribeLogDirsPartition::default();
                d.partition_index = p.index;
                d.partition_size = p.size_bytes() as i64;
                topics.entry(p.topic.to_string()).or_default().push(d);
            }
        }
        for (name, mut partitions) in topics {
            partitions.sort_by_key(|p| p.partition_index);
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(StrBytes::from_string(name));
            t.partitions = partitions;
            result.topics.push(t);
        }
        response.results.push(result);
    }
    response
}

/// Total and free bytes of the filesystem holding `path` (-1 when unknown).
fn disk_space(path: &std::path::Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return (-1, -1);
    };
    // SAFETY: statvfs writes into the zeroed struct; c is a valid NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return (-1, -1);
    }
    let frsize = s.f_frsize as i64;
    (s.f_blocks as i64 * frsize, s.f_bavail as i64 * frsize)
}
