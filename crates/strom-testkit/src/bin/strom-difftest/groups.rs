//! Consumer groups: the classic protocol's join/sync/heartbeat/leave, the admin APIs, the
//! errors for wrong generations and members, committed offsets, and KIP-848 heartbeats.

use crate::kit::{self, msg, name, s, Obs};
use bytes::Bytes;
use kafka_protocol::messages::*;
use strom_testkit::Conn;

fn gid(g: &str) -> GroupId {
    GroupId(s(g))
}

fn join(c: &mut Conn, group: &str, member: &str, session_ms: i32, kind: &str) -> JoinGroupResponse {
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = Bytes::from_static(b"\x00\x01");
    let mut req = JoinGroupRequest::default();
    req.group_id = gid(group);
    req.session_timeout_ms = session_ms;
    req.rebalance_timeout_ms = 10_000;
    req.member_id = s(member);
    req.protocol_type = s(kind);
    req.protocols.push(p);
    c.call(ApiKey::JoinGroup, 9, &req)
}

fn see_join(o: &mut Obs, label: &str, r: &JoinGroupResponse) {
    o.see(format!(
        "{label}: error={} generation={} protocol={:?} leader_is_self={} member_id={} members={}",
        r.error_code,
        r.generation_id,
        r.protocol_name.as_ref().map(|p| p.as_str()),
        !r.leader.is_empty() && r.leader == r.member_id,
        if r.member_id.is_empty() {
            "empty"
        } else {
            "set"
        },
        r.members.len()
    ));
}

fn sync(
    c: &mut Conn,
    group: &str,
    generation: i32,
    member: &str,
    assign: bool,
) -> SyncGroupResponse {
    let mut req = SyncGroupRequest::default();
    req.group_id = gid(group);
    req.generation_id = generation;
    req.member_id = s(member);
    req.protocol_type = Some(s("consumer"));
    req.protocol_name = Some(s("range"));
    if assign {
        let mut a = sync_group_request::SyncGroupRequestAssignment::default();
        a.member_id = s(member);
        a.assignment = Bytes::from_static(b"\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00");
        req.assignments.push(a);
    }
    c.call(ApiKey::SyncGroup, 5, &req)
}

fn heartbeat(c: &mut Conn, group: &str, generation: i32, member: &str) -> i16 {
    let mut req = HeartbeatRequest::default();
    req.group_id = gid(group);
    req.generation_id = generation;
    req.member_id = s(member);
    let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &req);
    r.error_code
}

fn describe(o: &mut Obs, label: &str, c: &mut Conn, group: &str) {
    let mut req = DescribeGroupsRequest::default();
    req.groups.push(gid(group));
    let r: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 5, &req);
    let g = &r.groups[0];
    o.see(format!(
        "{label}: error={} state={} protocol_type={:?} protocol={:?} members={}",
        g.error_code,
        g.group_state.as_str(),
        g.protocol_type.as_str(),
        g.protocol_data.as_str(),
        g.members.len()
    ));
    for m in &g.members {
        o.see(format!(
            "{label} member: client_id={} assignment_bytes={}",
            m.client_id.as_str(),
            m.member_assignment.len()
        ));
    }
}

fn leave(c: &mut Conn, group: &str, member: &str) -> String {
    let mut m = leave_group_request::MemberIdentity::default();
    m.member_id = s(member);
    let mut req = LeaveGroupRequest::default();
    req.group_id = gid(group);
    req.members.push(m);
    let r: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 5, &req);
    let per: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
    format!("error={} members={per:?}", r.error_code)
}

fn delete_group(c: &mut Conn, group: &str) -> i16 {
    let mut req = DeleteGroupsRequest::default();
    req.groups_names.push(gid(group));
    let r: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &req);
    r.results[0].error_code
}

/// FindCoordinator, asked again (as clients do) while the coordinator is not available yet
/// (a broker creates `__consumer_offsets` on the first ask); the last answer is observed.
fn find_coordinator(o: &mut Obs, c: &mut Conn, key: &str, key_type: i8) {
    let mut req = FindCoordinatorRequest::default();
    req.key_type = key_type;
    req.coordinator_keys.push(s(key));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let r = loop {
        let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &req);
        // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
        let retriable = (14..=16).contains(&r.coordinators[0].error_code);
        if !retriable || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // A coordinator found may still be loading its partition: wait for it, as a client's
    // retries would.
    if key_type == 0 && r.coordinators[0].error_code == 0 {
        loop {
            let mut d = DescribeGroupsRequest::default();
            d.groups.push(gid(key));
            let g: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 5, &d);
            let loading = (14..=16).contains(&g.groups[0].error_code);
            if !loading || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let x = &r.coordinators[0];
    o.see(format!(
        "find coordinator type {key_type} {key:?}: error={} node={} message={}",
        x.error_code,
        x.node_id.0,
        msg(&x.error_message)
    ));
}

pub fn classic_group(o: &mut Obs, c: &mut Conn) {
    let g = o.topic("g");
    find_coordinator(o, c, &g, 0);
    let first = join(c, &g, "", 10_000, "consumer");
    see_join(o, "join without id", &first);
    let member = first.member_id.to_string();
    let r = join(c, &g, &member, 10_000, "consumer");
    see_join(o, "join with id", &r);
    let s1 = sync(c, &g, r.generation_id, &member, true);
    o.see(format!(
        "sync: error={} assignment_bytes={}",
        s1.error_code,
        s1.assignment.len()
    ));
    o.see(format!(
        "heartbeat: error={}",
        heartbeat(c, &g, r.generation_id, &member)
    ));
    describe(o, "describe stable", c, &g);
    let mut lg = ListGroupsRequest::default();
    lg.states_filter = vec![s("Stable")];
    let l: ListGroupsResponse = c.call(ApiKey::ListGroups, 5, &lg);
    let ours: Vec<String> = l
        .groups
        .iter()
        .filter(|x| x.group_id.as_str() == g)
        .map(|x| {
            format!(
                "{}/{}/{}",
                x.protocol_type.as_str(),
                x.group_state.as_str(),
                x.group_type.as_str()
            )
        })
        .collect();
    o.see(format!("list stable: error={} ours={ours:?}", l.error_code));
    o.see(format!(
        "delete while stable: error={}",
        delete_group(c, &g)
    ));
    o.see(format!("leave: {}", leave(c, &g, &member)));
    describe(o, "describe after leave", c, &g);
    o.see(format!("delete empty: error={}", delete_group(c, &g)));
    describe(o, "describe deleted", c, &g);
    o.see(format!("delete again: error={}", delete_group(c, &g)));
}

pub fn group_errors(o: &mut Obs, c: &mut Conn) {
    let g = o.topic("g");
    find_coordinator(o, c, &g, 0);
    find_coordinator(o, c, "no-such-group", 0);
    see_join(o, "session 1000 ms", &join(c, &g, "", 1_000, "consumer"));
    see_join(o, "session 2h", &join(c, &g, "", 7_200_000, "consumer"));
    see_join(o, "empty group id", &join(c, "", "", 10_000, "consumer"));
    see_join(
        o,
        "unknown member id",
        &join(c, &g, "nobody", 10_000, "consumer"),
    );
    let first = join(c, &g, "", 10_000, "consumer");
    let member = first.member_id.to_string();
    let r = join(c, &g, &member, 10_000, "consumer");
    see_join(o, "member joins", &r);
    let generation = r.generation_id;
    see_join(
        o,
        "other protocol type",
        &join(c, &g, "", 10_000, "connect"),
    );
    wrong_member_or_generation(o, c, &g, &member, generation);
    unknown_groups(o, c);
    o.see(format!("leave: {}", leave(c, &g, &member)));
}

/// SyncGroup, Heartbeat, OffsetCommit and LeaveGroup with a wrong generation or member.
fn wrong_member_or_generation(o: &mut Obs, c: &mut Conn, g: &str, member: &str, generation: i32) {
    o.see(format!(
        "sync wrong generation: error={}",
        sync(c, g, generation + 5, member, true).error_code
    ));
    o.see(format!(
        "sync unknown member: error={}",
        sync(c, g, generation, "nobody", false).error_code
    ));
    o.see(format!(
        "sync unknown group: error={}",
        sync(c, "no-such-group", 1, "nobody", false).error_code
    ));
    o.see(format!(
        "sync ok: error={}",
        sync(c, g, generation, member, true).error_code
    ));
    o.see(format!(
        "heartbeat wrong generation: error={}",
        heartbeat(c, g, generation + 1, member)
    ));
    o.see(format!(
        "heartbeat unknown member: error={}",
        heartbeat(c, g, generation, "nobody")
    ));
    o.see(format!(
        "heartbeat unknown group: error={}",
        heartbeat(c, "no-such-group", 1, "nobody")
    ));
    o.see(format!(
        "heartbeat empty group id: error={}",
        heartbeat(c, "", 1, "nobody")
    ));
    let t = o.topic("t");
    kit::topic(c, &t, 1, &[]);
    o.see(format!(
        "commit wrong generation: {}",
        commit(c, g, generation + 3, member, &t, 0, 5, None)
    ));
    o.see(format!(
        "commit unknown member: {}",
        commit(c, g, generation, "nobody", &t, 0, 5, None)
    ));
    o.see(format!(
        "commit member ok: {}",
        commit(c, g, generation, member, &t, 0, 5, None)
    ));
    o.see(format!("leave unknown member: {}", leave(c, g, "nobody")));
}

/// DeleteGroups and DescribeGroups (v5 and v6) of a group that does not exist.
fn unknown_groups(o: &mut Obs, c: &mut Conn) {
    o.see(format!(
        "delete unknown group: error={}",
        delete_group(c, "no-such-group")
    ));
    describe(o, "describe unknown group", c, "no-such-group");
    let mut req = DescribeGroupsRequest::default();
    req.groups.push(gid("no-such-group"));
    let r: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 6, &req);
    let d = &r.groups[0];
    o.see(format!(
        "describe unknown group v6: error={} message={} state={:?}",
        d.error_code,
        msg(&d.error_message),
        d.group_state.as_str()
    ));
}

#[allow(clippy::too_many_arguments)]
fn commit(
    c: &mut Conn,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    metadata: Option<&str>,
) -> String {
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.partition_index = partition;
    p.committed_offset = offset;
    p.committed_leader_epoch = -1;
    p.committed_metadata = metadata.map(s);
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = name(topic);
    t.partitions.push(p);
    let mut req = OffsetCommitRequest::default();
    req.group_id = gid(group);
    req.generation_id_or_member_epoch = generation;
    req.member_id = s(member);
    req.topics.push(t);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 9, &req);
    format!("error={}", r.topics[0].partitions[0].error_code)
}

fn fetch_offsets(
    o: &mut Obs,
    label: &str,
    c: &mut Conn,
    group: &str,
    topic: Option<(&str, Vec<i32>)>,
) {
    let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
    g.group_id = gid(group);
    g.member_epoch = -1;
    g.topics = topic.map(|(t, ps)| {
        let mut x = offset_fetch_request::OffsetFetchRequestTopics::default();
        x.name = name(t);
        x.partition_indexes = ps;
        vec![x]
    });
    let mut req = OffsetFetchRequest::default();
    req.groups.push(g);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 9, &req);
    let g = &r.groups[0];
    o.see(format!(
        "{label}: error={} topics={}",
        g.error_code,
        g.topics.len()
    ));
    for t in &g.topics {
        for p in &t.partitions {
            o.see(format!(
                "{label} {} p{}: error={} offset={} leader_epoch={} metadata={}",
                t.name.as_str(),
                p.partition_index,
                p.error_code,
                p.committed_offset,
                p.committed_leader_epoch,
                msg(&p.metadata)
            ));
        }
    }
}

pub fn offsets(o: &mut Obs, c: &mut Conn) {
    let g = o.topic("g");
    find_coordinator(o, c, &g, 0);
    find_coordinator(o, c, "no-such-group", 0);
    let t = o.topic("t");
    kit::topic(c, &t, 2, &[]);
    o.see(format!(
        "commit simple: {}",
        commit(c, &g, -1, "", &t, 0, 10, Some("meta"))
    ));
    o.see(format!(
        "commit p1 null metadata: {}",
        commit(c, &g, -1, "", &t, 1, 3, None)
    ));
    let long = "m".repeat(5000);
    o.see(format!(
        "commit metadata 5000 chars: {}",
        commit(c, &g, -1, "", &t, 0, 11, Some(&long))
    ));
    o.see(format!(
        "commit unknown partition: {}",
        commit(c, &g, -1, "", &t, 9, 1, None)
    ));
    o.see(format!(
        "commit unknown topic: {}",
        commit(c, &g, -1, "", "no-such-topic", 0, 1, None)
    ));
    o.see(format!(
        "commit negative offset: {}",
        commit(c, &g, -1, "", &t, 1, -7, None)
    ));
    fetch_offsets(o, "fetch named", c, &g, Some((&t, vec![0, 1, 5])));
    fetch_offsets(o, "fetch all", c, &g, None);
    fetch_offsets(
        o,
        "fetch unknown group",
        c,
        "no-such-group",
        Some((&t, vec![0])),
    );
    let mut p = offset_delete_request::OffsetDeleteRequestPartition::default();
    p.partition_index = 0;
    let mut dt = offset_delete_request::OffsetDeleteRequestTopic::default();
    dt.name = name(&t);
    dt.partitions.push(p);
    let mut req = OffsetDeleteRequest::default();
    req.group_id = gid(&g);
    req.topics.push(dt);
    let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &req);
    o.see(format!(
        "offset delete: error={} partitions={:?}",
        r.error_code,
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect::<Vec<_>>()
    ));
    fetch_offsets(o, "fetch after delete", c, &g, Some((&t, vec![0, 1])));
    req.group_id = gid("no-such-group");
    let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &req);
    o.see(format!(
        "offset delete unknown group: error={}",
        r.error_code
    ));
}

fn cg_heartbeat(
    c: &mut Conn,
    f: impl FnOnce(&mut ConsumerGroupHeartbeatRequest),
) -> ConsumerGroupHeartbeatResponse {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.rebalance_timeout_ms = -1;
    f(&mut req);
    c.call(ApiKey::ConsumerGroupHeartbeat, 1, &req)
}

fn see_cg(o: &mut Obs, label: &str, r: &ConsumerGroupHeartbeatResponse) {
    let assigned: Vec<i32> = r
        .assignment
        .iter()
        .flat_map(|a| a.topic_partitions.iter().flat_map(|t| t.partitions.clone()))
        .collect();
    o.see(format!(
        "{label}: error={} message={} epoch={} interval={} assigned={assigned:?}",
        r.error_code,
        msg(&r.error_message),
        r.member_epoch,
        r.heartbeat_interval_ms,
    ));
}

pub fn consumer_group_heartbeat(o: &mut Obs, c: &mut Conn) {
    let g = o.topic("g");
    find_coordinator(o, c, &g, 0);
    find_coordinator(o, c, "no-such-group", 0);
    let t = o.topic("t");
    kit::topic(c, &t, 2, &[]);
    let id = "AAAAAAAAAAAAAAAAAAAAAA";
    let r = cg_heartbeat(c, |_| {});
    see_cg(o, "empty", &r);
    let r = cg_heartbeat(c, |q| {
        q.group_id = gid(&g);
        q.member_id = s(id);
    });
    see_cg(o, "join without subscription", &r);
    let r = cg_heartbeat(c, |q| {
        q.group_id = gid(&g);
        q.member_id = s(id);
        q.rebalance_timeout_ms = 10_000;
        q.subscribed_topic_names = Some(vec![name(&t)]);
        q.topic_partitions = Some(vec![]);
        q.server_assignor = Some(s("nope"));
    });
    see_cg(o, "unknown assignor", &r);
    join_fence_describe_leave(o, c, &g, &t, id);
}

/// A member joins, holds its assignment, is fenced for a wrong epoch, the group is
/// described, the member leaves.
fn join_fence_describe_leave(o: &mut Obs, c: &mut Conn, g: &str, t: &str, id: &str) {
    let r = cg_heartbeat(c, |q| {
        q.group_id = gid(g);
        q.member_id = s(id);
        q.rebalance_timeout_ms = 10_000;
        q.subscribed_topic_names = Some(vec![name(t)]);
        q.topic_partitions = Some(vec![]);
    });
    // The first answer may or may not carry the assignment yet (Kafka's may not); the
    // next heartbeat does.
    o.see(format!(
        "join: error={} epoch={}",
        r.error_code, r.member_epoch
    ));
    let assigned = |r: &ConsumerGroupHeartbeatResponse| -> Option<Vec<i32>> {
        r.assignment.as_ref().map(|a| {
            a.topic_partitions
                .iter()
                .flat_map(|t| t.partitions.clone())
                .collect()
        })
    };
    let mut last = assigned(&r);
    let first = r;
    let r = cg_heartbeat(c, |q| {
        q.group_id = gid(g);
        q.member_id = s(id);
        q.member_epoch = first.member_epoch;
    });
    // What the client holds after two heartbeats: the newest assignment sent.
    if let Some(a) = assigned(&r).filter(|a| !a.is_empty()) {
        last = Some(a);
    }
    o.see(format!(
        "holds after two heartbeats: error={} {last:?}",
        r.error_code
    ));
    let epoch = r.member_epoch;
    let r = cg_heartbeat(c, |q| {
        q.group_id = gid(g);
        q.member_id = s(id);
        q.member_epoch = epoch + 10;
    });
    // Group epochs are the coordinator's business (Kafka's first join may cost it one more
    // epoch than Strom's): the message is compared with its numbers masked.
    let masked = r.error_message.as_ref().map(|m| {
        m.chars()
            .map(|ch| if ch.is_ascii_digit() { '#' } else { ch })
            .collect::<String>()
    });
    o.see(format!(
        "epoch ahead: error={} message={masked:?}",
        r.error_code
    ));
    let r = cg_heartbeat(c, |q| {
        q.group_id = gid(g);
        q.member_id = s("BBBBBBBBBBBBBBBBBBBBBB");
        q.member_epoch = 3;
    });
    see_cg(o, "unknown member", &r);
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![gid(g), gid("no-such-group")];
    let d: ConsumerGroupDescribeResponse = c.call(ApiKey::ConsumerGroupDescribe, 1, &req);
    for x in &d.groups {
        o.see(format!(
            "describe: error={} message={} state={} epochs_agree={} assignor={} members={}",
            x.error_code,
            msg(&x.error_message),
            x.group_state.as_str(),
            x.group_epoch == x.assignment_epoch,
            x.assignor_name.as_str(),
            x.members.len()
        ));
    }
    let r = cg_heartbeat(c, |q| {
        q.group_id = gid(g);
        q.member_id = s(id);
        q.member_epoch = -1;
    });
    see_cg(o, "leave", &r);
}
