//! In-memory state: hubs, their connections, users and groups, and fan-out of pre-serialised frames.
//!
//! Each connection has a bounded queue drained by its own socket task. A send serialises its frame once, then
//! holds a hub's read lock only while it pushes cheap reference-counted clones into those queues with
//! `try_send`; no lock is held while anything is written to a socket. Connections whose queue is full are
//! waited for after the lock is released, for a bounded time, and disconnected if they still do not drain.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::names::{GroupName, HubName, UserId};

/// A serialised hub-protocol record, shared by every connection it goes to.
pub(crate) type Frame = Utf8Bytes;

/// Without a ttl a user stays in a group for at most a year (docs/protocol/signalr-service.md §4.1).
const USER_GROUP_DEFAULT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Among groups joined without a ttl, only the latest 100 per user are kept (docs/protocol/signalr-service.md §4.1).
const MAX_UNTIMED_GROUPS_PER_USER: usize = 100;

/// One client connection as the rest of the emulator sees it.
pub(crate) struct Peer {
    pub(crate) id: Arc<str>,
    pub(crate) user: Option<UserId>,
    queue: mpsc::Sender<Frame>,
    closing: CancellationToken,
    close_reason: Mutex<Option<String>>,
}

/// The receiving half a socket task drains, and the signal that asks it to close.
pub(crate) struct PeerInbox {
    pub(crate) frames: mpsc::Receiver<Frame>,
    pub(crate) closing: CancellationToken,
}

impl Peer {
    /// A new peer and the inbox its socket task reads.
    pub(crate) fn new(
        id: Arc<str>,
        user: Option<UserId>,
        capacity: usize,
    ) -> (Arc<Self>, PeerInbox) {
        let (queue, frames) = mpsc::channel(capacity.max(1));
        let closing = CancellationToken::new();
        let peer = Arc::new(Self {
            id,
            user,
            queue,
            closing: closing.clone(),
            close_reason: Mutex::new(None),
        });
        (peer, PeerInbox { frames, closing })
    }

    /// Asks the socket task to send a close message with `reason` and end the connection.
    pub(crate) fn close(&self, reason: Option<String>) {
        let mut slot = self.close_reason.lock();
        if slot.is_none() {
            *slot = reason;
        }
        self.closing.cancel();
    }

    /// The reason given to [`Peer::close`], if any.
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.close_reason.lock().clone()
    }
}

/// Who a send or close goes to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    All,
    User(&'a UserId),
    Group(&'a GroupName),
    Connection(&'a str),
}

/// How a log line names a target: `group "room-1"`, not the `Debug` form of the enum.
impl std::fmt::Display for Target<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => formatter.write_str("every connection"),
            Self::User(user) => write!(formatter, "user {:?}", user.as_str()),
            Self::Group(group) => write!(formatter, "group {:?}", group.as_str()),
            Self::Connection(connection) => write!(formatter, "connection {connection:?}"),
        }
    }
}

/// Connections the caller excluded with `?excluded=` (docs/protocol/signalr-service.md §4.1).
pub(crate) struct Excluded(HashSet<String>);

impl Excluded {
    /// Builds the set from the repeated query parameter.
    pub(crate) fn new(ids: Vec<String>) -> Self {
        Self(ids.into_iter().collect())
    }

    fn contains(&self, id: &str) -> bool {
        !self.0.is_empty() && self.0.contains(id)
    }
}

/// The outcome of pushing a frame into queues.
pub(crate) struct Delivery {
    /// Connections the frame was queued for without waiting.
    pub(crate) queued: usize,
    /// Connections whose queue was full; see [`Delivery::finish`].
    blocked: Vec<Arc<Peer>>,
    frame: Frame,
}

impl Delivery {
    /// Waits, with no lock held, for full queues to take the frame; a connection that does not drain within
    /// `grace` is closed, so one stuck client cannot stall every sender. Returns how many got the frame.
    pub(crate) async fn finish(self, grace: Duration) -> usize {
        if self.blocked.is_empty() {
            return self.queued;
        }
        let frame = &self.frame;
        let results = futures_util::future::join_all(self.blocked.iter().map(|peer| async move {
            match tokio::time::timeout(grace, peer.queue.send(frame.clone())).await {
                Ok(Ok(())) => true,
                Ok(Err(_closed)) => false,
                Err(_elapsed) => {
                    tracing::warn!(connection_id = %peer.id, "closing a client that stopped reading");
                    peer.close(Some("The client did not read its messages in time.".to_owned()));
                    false
                }
            }
        }))
        .await;
        self.queued + results.into_iter().filter(|sent| *sent).count()
    }
}

/// All hubs, and the connection quota.
pub(crate) struct Registry {
    hubs: RwLock<HashMap<HubName, Arc<Hub>>>,
    connections: AtomicUsize,
    max_connections: usize,
}

/// Holds one unit of the connection quota; released on drop.
pub(crate) struct ConnectionSlot {
    registry: Arc<Registry>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.registry.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Registry {
    /// An empty registry allowing `max_connections` at once.
    pub(crate) fn new(max_connections: usize) -> Self {
        Self {
            hubs: RwLock::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            max_connections,
        }
    }

    /// The hub, created on first use: unlike Microsoft's emulator, a hub exists before its first client, so
    /// user-group changes made early are kept (docs/protocol/signalr-service.md §7).
    pub(crate) fn hub(&self, name: &HubName) -> Arc<Hub> {
        if let Some(hub) = self.hubs.read().get(name) {
            return Arc::clone(hub);
        }
        Arc::clone(
            self.hubs
                .write()
                .entry(name.clone())
                .or_insert_with(|| Arc::new(Hub::default())),
        )
    }

    /// The hub if anything ever happened in it; read-only calls need not create one.
    pub(crate) fn existing_hub(&self, name: &HubName) -> Option<Arc<Hub>> {
        self.hubs.read().get(name).cloned()
    }

    /// Takes a unit of the connection quota, or `None` when it is used up.
    pub(crate) fn reserve_connection(self: &Arc<Self>) -> Option<ConnectionSlot> {
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < self.max_connections).then_some(count + 1)
            })
            .ok()
            .map(|_| ConnectionSlot {
                registry: Arc::clone(self),
            })
    }

    /// Drops user-group memberships whose ttl has run out, in every hub.
    pub(crate) fn expire(&self, now: Instant) {
        let hubs: Vec<Arc<Hub>> = self.hubs.read().values().cloned().collect();
        for hub in hubs {
            hub.expire(now);
        }
    }
}

/// One hub's connections, users and groups.
#[derive(Default)]
pub(crate) struct Hub {
    state: RwLock<HubState>,
}

#[derive(Default)]
struct HubState {
    connections: HashMap<Arc<str>, Member>,
    users: HashMap<UserId, HashMap<Arc<str>, Arc<Peer>>>,
    groups: HashMap<GroupName, HashMap<Arc<str>, Arc<Peer>>>,
    /// User-group memberships, kept whether or not the user is connected, and applied when they connect.
    user_groups: HashMap<UserId, HashMap<GroupName, UserGroup>>,
    sequence: u64,
}

struct Member {
    peer: Arc<Peer>,
    groups: HashMap<GroupName, Via>,
}

/// Why a connection is in a group: added itself, through its user, or both. Removing the user's membership
/// (or its expiry) keeps a connection that was also added directly.
#[derive(Clone, Copy, Default)]
struct Via {
    direct: bool,
    user: bool,
}

struct UserGroup {
    expires: Instant,
    untimed: bool,
    sequence: u64,
}

impl Hub {
    /// Registers a connected, handshaken client and puts it into its user's groups.
    pub(crate) fn connect(&self, peer: Arc<Peer>, now: Instant) {
        let mut state = self.state.write();
        let mut groups = HashMap::new();
        if let Some(user) = &peer.user {
            state
                .users
                .entry(user.clone())
                .or_default()
                .insert(Arc::clone(&peer.id), Arc::clone(&peer));
            if let Some(memberships) = state.user_groups.get(user) {
                for (group, membership) in memberships {
                    if membership.expires > now {
                        groups.insert(
                            group.clone(),
                            Via {
                                direct: false,
                                user: true,
                            },
                        );
                    }
                }
            }
        }
        for group in groups.keys() {
            state
                .groups
                .entry(group.clone())
                .or_default()
                .insert(Arc::clone(&peer.id), Arc::clone(&peer));
        }
        state
            .connections
            .insert(Arc::clone(&peer.id), Member { peer, groups });
    }

    /// Forgets a connection and its group memberships (not its user's).
    pub(crate) fn disconnect(&self, connection_id: &str) {
        let mut state = self.state.write();
        let Some(member) = state.connections.remove(connection_id) else {
            return;
        };
        for group in member.groups.keys() {
            state.remove_from_group_index(group, connection_id);
        }
        if let Some(user) = &member.peer.user
            && let Some(connections) = state.users.get_mut(user)
        {
            connections.remove(connection_id);
            if connections.is_empty() {
                state.users.remove(user);
            }
        }
    }

    /// Queues `frame` for every target connection not excluded.
    pub(crate) fn deliver(
        &self,
        target: Target<'_>,
        excluded: &Excluded,
        frame: Frame,
    ) -> Delivery {
        let state = self.state.read();
        let mut queued = 0;
        let mut blocked = Vec::new();
        let mut push = |peer: &Arc<Peer>| {
            if excluded.contains(&peer.id) {
                return;
            }
            match peer.queue.try_send(frame.clone()) {
                Ok(()) => queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => blocked.push(Arc::clone(peer)),
                // The socket task has ended and is about to disconnect this peer.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        };
        match target {
            Target::All => state
                .connections
                .values()
                .for_each(|member| push(&member.peer)),
            Target::User(user) => state
                .users
                .get(user)
                .into_iter()
                .flat_map(|m| m.values())
                .for_each(&mut push),
            Target::Group(group) => state
                .groups
                .get(group)
                .into_iter()
                .flat_map(|m| m.values())
                .for_each(&mut push),
            Target::Connection(id) => {
                if let Some(member) = state.connections.get(id) {
                    push(&member.peer);
                }
            }
        }
        drop(state);
        Delivery {
            queued,
            blocked,
            frame,
        }
    }

    /// Closes every target connection not excluded; returns how many.
    pub(crate) fn close(
        &self,
        target: Target<'_>,
        excluded: &Excluded,
        reason: Option<&str>,
    ) -> usize {
        let state = self.state.read();
        let peers: Vec<&Arc<Peer>> = match target {
            Target::All => state
                .connections
                .values()
                .map(|member| &member.peer)
                .collect(),
            Target::User(user) => state
                .users
                .get(user)
                .into_iter()
                .flat_map(|m| m.values())
                .collect(),
            Target::Group(group) => state
                .groups
                .get(group)
                .into_iter()
                .flat_map(|m| m.values())
                .collect(),
            Target::Connection(id) => state
                .connections
                .get(id)
                .map(|member| &member.peer)
                .into_iter()
                .collect(),
        };
        let mut closed = 0;
        for peer in peers
            .into_iter()
            .filter(|peer| !excluded.contains(&peer.id))
        {
            peer.close(reason.map(str::to_owned));
            closed += 1;
        }
        closed
    }

    /// Whether the connection is here.
    pub(crate) fn connection_exists(&self, connection_id: &str) -> bool {
        self.state.read().connections.contains_key(connection_id)
    }

    /// Whether the user has any connection here.
    pub(crate) fn user_exists(&self, user: &UserId) -> bool {
        self.state.read().users.contains_key(user)
    }

    /// Whether the group has any connection.
    pub(crate) fn group_exists(&self, group: &GroupName) -> bool {
        self.state.read().groups.contains_key(group)
    }

    /// Adds a connection to a group; `false` when there is no such connection.
    pub(crate) fn add_connection_to_group(&self, connection_id: &str, group: &GroupName) -> bool {
        let mut state = self.state.write();
        let Some(member) = state.connections.get_mut(connection_id) else {
            return false;
        };
        member.groups.entry(group.clone()).or_default().direct = true;
        let peer = Arc::clone(&member.peer);
        state
            .groups
            .entry(group.clone())
            .or_default()
            .insert(Arc::clone(&peer.id), peer);
        true
    }

    /// Removes a connection from a group; `false` when there is no such connection.
    pub(crate) fn remove_connection_from_group(
        &self,
        connection_id: &str,
        group: &GroupName,
    ) -> bool {
        let mut state = self.state.write();
        let Some(member) = state.connections.get_mut(connection_id) else {
            return false;
        };
        if member.groups.remove(group).is_some() {
            state.remove_from_group_index(group, connection_id);
        }
        true
    }

    /// Removes a connection from every group; `false` when there is no such connection.
    pub(crate) fn remove_connection_from_all_groups(&self, connection_id: &str) -> bool {
        let mut state = self.state.write();
        let Some(member) = state.connections.get_mut(connection_id) else {
            return false;
        };
        let groups: Vec<GroupName> = member.groups.drain().map(|(group, _)| group).collect();
        for group in &groups {
            state.remove_from_group_index(group, connection_id);
        }
        true
    }

    /// Adds a user to a group (docs/protocol/signalr-service.md §4.1 ttl rules): without `ttl` for a year, with `ttl`
    /// seconds for that long, and with `ttl = 0` only the user's connections of this moment, remembering nothing.
    pub(crate) fn add_user_to_group(
        &self,
        user: &UserId,
        group: &GroupName,
        ttl: Option<u32>,
        now: Instant,
    ) {
        let mut state = self.state.write();
        let lifetime = match ttl {
            None => Some(USER_GROUP_DEFAULT_LIFETIME),
            Some(0) => None,
            Some(seconds) => Some(Duration::from_secs(u64::from(seconds))),
        };
        if let Some(lifetime) = lifetime {
            state.sequence += 1;
            let sequence = state.sequence;
            let memberships = state.user_groups.entry(user.clone()).or_default();
            memberships.insert(
                group.clone(),
                UserGroup {
                    expires: now + lifetime,
                    untimed: ttl.is_none(),
                    sequence,
                },
            );
            let evicted = evict_oldest_untimed(memberships);
            for evicted_group in evicted {
                state.drop_user_membership(user, &evicted_group);
            }
        }
        let connection_ids: Vec<Arc<str>> = state
            .users
            .get(user)
            .map(|connections| connections.keys().cloned().collect())
            .unwrap_or_default();
        for connection_id in connection_ids {
            if let Some(member) = state.connections.get_mut(&connection_id) {
                member.groups.entry(group.clone()).or_default().user = true;
                let peer = Arc::clone(&member.peer);
                state
                    .groups
                    .entry(group.clone())
                    .or_default()
                    .insert(connection_id, peer);
            }
        }
    }

    /// Removes a user, and all of the user's connections, from a group.
    pub(crate) fn remove_user_from_group(&self, user: &UserId, group: &GroupName) {
        let mut state = self.state.write();
        if let Some(memberships) = state.user_groups.get_mut(user) {
            memberships.remove(group);
            if memberships.is_empty() {
                state.user_groups.remove(user);
            }
        }
        state.remove_user_connections_from_group(user, group);
    }

    /// Removes a user, and all of the user's connections, from every group.
    pub(crate) fn remove_user_from_all_groups(&self, user: &UserId) {
        let mut state = self.state.write();
        let mut groups: HashSet<GroupName> = state
            .user_groups
            .remove(user)
            .map(|memberships| memberships.into_keys().collect())
            .unwrap_or_default();
        if let Some(connections) = state.users.get(user) {
            for connection_id in connections.keys() {
                if let Some(member) = state.connections.get(connection_id) {
                    groups.extend(member.groups.keys().cloned());
                }
            }
        }
        for group in &groups {
            state.remove_user_connections_from_group(user, group);
        }
    }

    /// Whether the user is in the group: a live membership, or any of the user's connections in it.
    pub(crate) fn is_user_in_group(&self, user: &UserId, group: &GroupName, now: Instant) -> bool {
        let state = self.state.read();
        let remembered = state
            .user_groups
            .get(user)
            .and_then(|memberships| memberships.get(group))
            .is_some_and(|membership| membership.expires > now);
        remembered
            || state.users.get(user).is_some_and(|connections| {
                connections.keys().any(|connection_id| {
                    state
                        .connections
                        .get(connection_id)
                        .is_some_and(|member| member.groups.contains_key(group))
                })
            })
    }

    /// Drops memberships whose ttl has run out, and takes the user's connections out of those groups.
    pub(crate) fn expire(&self, now: Instant) {
        let mut state = self.state.write();
        let mut expired = Vec::new();
        state.user_groups.retain(|user, memberships| {
            memberships.retain(|group, membership| {
                let keep = membership.expires > now;
                if !keep {
                    expired.push((user.clone(), group.clone()));
                }
                keep
            });
            !memberships.is_empty()
        });
        for (user, group) in expired {
            tracing::debug!(
                user = user.as_str(),
                group = group.as_str(),
                "user-group membership expired"
            );
            state.drop_user_membership(&user, &group);
        }
    }
}

/// Keeps only the newest untimed memberships; returns the groups that were dropped.
fn evict_oldest_untimed(memberships: &mut HashMap<GroupName, UserGroup>) -> Vec<GroupName> {
    let mut untimed: Vec<(u64, GroupName)> = memberships
        .iter()
        .filter(|(_, membership)| membership.untimed)
        .map(|(group, membership)| (membership.sequence, group.clone()))
        .collect();
    if untimed.len() <= MAX_UNTIMED_GROUPS_PER_USER {
        return Vec::new();
    }
    untimed.sort_unstable_by_key(|(sequence, _)| *sequence);
    let excess = untimed.len() - MAX_UNTIMED_GROUPS_PER_USER;
    untimed
        .into_iter()
        .take(excess)
        .map(|(_, group)| {
            memberships.remove(&group);
            group
        })
        .collect()
}

impl HubState {
    fn remove_from_group_index(&mut self, group: &GroupName, connection_id: &str) {
        if let Some(members) = self.groups.get_mut(group) {
            members.remove(connection_id);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    fn user_connection_ids(&self, user: &UserId) -> Vec<Arc<str>> {
        self.users
            .get(user)
            .map(|connections| connections.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Takes the user's connections out of the group entirely (explicit removal).
    fn remove_user_connections_from_group(&mut self, user: &UserId, group: &GroupName) {
        for connection_id in self.user_connection_ids(user) {
            let removed = self
                .connections
                .get_mut(&connection_id)
                .is_some_and(|member| member.groups.remove(group).is_some());
            if removed {
                self.remove_from_group_index(group, &connection_id);
            }
        }
    }

    /// Undoes only what the user's membership added: connections added directly stay (expiry, eviction).
    fn drop_user_membership(&mut self, user: &UserId, group: &GroupName) {
        for connection_id in self.user_connection_ids(user) {
            let Some(member) = self.connections.get_mut(&connection_id) else {
                continue;
            };
            let leave = match member.groups.get_mut(group) {
                Some(via) if via.direct => {
                    via.user = false;
                    false
                }
                Some(_) => {
                    member.groups.remove(group);
                    true
                }
                None => false,
            };
            if leave {
                self.remove_from_group_index(group, &connection_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).expect("test user ids are valid")
    }

    fn group(name: &str) -> GroupName {
        GroupName::parse(name).expect("test group names are valid")
    }

    fn connect(hub: &Hub, id: &str, user_id: Option<&str>, now: Instant) -> PeerInbox {
        let (peer, inbox) = Peer::new(Arc::from(id), user_id.map(user), 8);
        hub.connect(peer, now);
        inbox
    }

    fn send_to_group(hub: &Hub, name: &str) -> usize {
        let group = group(name);
        hub.deliver(
            Target::Group(&group),
            &Excluded::new(Vec::new()),
            Frame::from("m"),
        )
        .queued
    }

    #[test]
    fn a_user_added_before_connecting_joins_the_group_on_connect() {
        let hub = Hub::default();
        let now = Instant::now();
        hub.add_user_to_group(&user("alice"), &group("room"), None, now);
        let _inbox = connect(&hub, "c1", Some("alice"), now);
        assert_eq!(send_to_group(&hub, "room"), 1);
        assert!(hub.group_exists(&group("room")));
    }

    #[test]
    fn ttl_zero_adds_only_the_connections_of_the_moment() {
        let hub = Hub::default();
        let now = Instant::now();
        let _first = connect(&hub, "c1", Some("alice"), now);
        hub.add_user_to_group(&user("alice"), &group("room"), Some(0), now);
        let _second = connect(&hub, "c2", Some("alice"), now);
        assert_eq!(send_to_group(&hub, "room"), 1);
    }

    #[test]
    fn a_ttl_membership_expires_but_direct_membership_stays() {
        let hub = Hub::default();
        let now = Instant::now();
        let _first = connect(&hub, "c1", Some("alice"), now);
        let _second = connect(&hub, "c2", Some("alice"), now);
        assert!(hub.add_connection_to_group("c2", &group("room")));
        hub.add_user_to_group(&user("alice"), &group("room"), Some(10), now);
        assert_eq!(send_to_group(&hub, "room"), 2);

        hub.expire(now + Duration::from_secs(9));
        assert!(hub.is_user_in_group(&user("alice"), &group("room"), now + Duration::from_secs(9)));
        assert_eq!(send_to_group(&hub, "room"), 2);

        let later = now + Duration::from_secs(10);
        hub.expire(later);
        assert_eq!(
            send_to_group(&hub, "room"),
            1,
            "the directly added connection stays"
        );
        let _third = connect(&hub, "c3", Some("alice"), later);
        assert_eq!(
            send_to_group(&hub, "room"),
            1,
            "an expired membership is not applied"
        );
    }

    #[test]
    fn only_the_latest_100_untimed_groups_are_kept_per_user() {
        let hub = Hub::default();
        let now = Instant::now();
        for index in 0..101 {
            hub.add_user_to_group(&user("alice"), &group(&format!("g{index}")), None, now);
        }
        assert!(!hub.is_user_in_group(&user("alice"), &group("g0"), now));
        assert!(hub.is_user_in_group(&user("alice"), &group("g1"), now));
        assert!(hub.is_user_in_group(&user("alice"), &group("g100"), now));
    }

    #[test]
    fn removing_a_user_from_a_group_removes_the_users_connections() {
        let hub = Hub::default();
        let now = Instant::now();
        let _first = connect(&hub, "c1", Some("alice"), now);
        let _other = connect(&hub, "c2", Some("bob"), now);
        hub.add_user_to_group(&user("alice"), &group("room"), None, now);
        assert!(hub.add_connection_to_group("c2", &group("room")));
        hub.remove_user_from_group(&user("alice"), &group("room"));
        assert_eq!(send_to_group(&hub, "room"), 1);
        assert!(!hub.is_user_in_group(&user("alice"), &group("room"), now));

        hub.add_user_to_group(&user("alice"), &group("a"), None, now);
        hub.add_user_to_group(&user("alice"), &group("b"), None, now);
        hub.remove_user_from_all_groups(&user("alice"));
        assert_eq!(send_to_group(&hub, "a") + send_to_group(&hub, "b"), 0);
    }

    #[test]
    fn disconnecting_cleans_up_users_and_groups() {
        let hub = Hub::default();
        let now = Instant::now();
        let _inbox = connect(&hub, "c1", Some("alice"), now);
        assert!(hub.add_connection_to_group("c1", &group("room")));
        hub.disconnect("c1");
        assert!(!hub.user_exists(&user("alice")));
        assert!(!hub.group_exists(&group("room")));
        assert!(!hub.connection_exists("c1"));
    }

    #[test]
    fn excluded_connections_get_nothing_and_full_queues_are_reported_as_blocked() {
        let hub = Hub::default();
        let now = Instant::now();
        let (peer, _inbox) = Peer::new(Arc::from("c1"), None, 1);
        hub.connect(peer, now);
        let _other = connect(&hub, "c2", None, now);
        let excluded = Excluded::new(vec!["c2".to_owned()]);
        let first = hub.deliver(Target::All, &excluded, Frame::from("a"));
        assert_eq!((first.queued, first.blocked.len()), (1, 0));
        let second = hub.deliver(Target::All, &excluded, Frame::from("b"));
        assert_eq!((second.queued, second.blocked.len()), (0, 1));
    }
}
