//! Per-network embedded DNS server, like Docker's: containers on a user-defined
//! bridge resolve each other's names (and aliases) through it, and every other
//! name is forwarded to the host's resolvers.
//!
//! The serving loops are plain tokio rather than `hickory_server::Server`:
//! hickory's `ResponseHandler` only sends a re-encoded `MessageResponse`, while
//! forwarding here relays the upstream's bytes untouched (same id, flags, rcode,
//! records, EDNS and compression), which is both simpler and exact. hickory-proto
//! still parses the queries and builds the answers for local names.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{rdata::A, DNSClass, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, trace, warn};

use crate::keeper::Keeper;

mod resolvers;
pub use resolvers::Resolvers;

/// Short, so a container that is replaced under the same name is found again quickly.
const LOCAL_TTL: u32 = 10;
/// How long one upstream gets before the next one is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle TCP clients are dropped so they cannot pin tasks forever.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds on concurrent work, so a flood cannot exhaust the daemon; UDP clients retry.
const MAX_UDP_IN_FLIGHT: usize = 256;
const MAX_TCP_CONNECTIONS: usize = 64;
/// Largest UDP payload we accept or advertise for our own answers (the usual EDNS default).
const MAX_UDP_PAYLOAD: u16 = 1232;
/// How many times `start` retries when port 0 gave a UDP port whose TCP twin is taken.
const BIND_ATTEMPTS: usize = 8;

/// Names one network's DNS answers: lower-case name -> addresses; and the
/// containers that forward elsewhere than the host's resolvers (`--dns`).
#[derive(Clone, Default)]
pub struct Records {
    names: Arc<RwLock<HashMap<String, Vec<Ipv4Addr>>>>,
    forwarders: Arc<RwLock<HashMap<IpAddr, Vec<SocketAddr>>>>,
}

impl Records {
    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    /// Replaces the addresses of `name`; an empty list forgets the name, so it is forwarded again.
    pub fn set(&self, name: &str, addrs: Vec<Ipv4Addr>) {
        let key = normalize(name);
        let mut names = self.write();
        if addrs.is_empty() {
            names.remove(&key);
        } else {
            names.insert(key, addrs);
        }
    }

    /// Adds one address to `name` (no duplicates).
    pub fn add(&self, name: &str, addr: Ipv4Addr) {
        let mut names = self.write();
        let addrs = names.entry(normalize(name)).or_default();
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }

    /// Replaces every name at once (an overlay network's names come from
    /// the cluster state).
    pub fn reset(&self, entries: impl IntoIterator<Item = (String, Ipv4Addr)>) {
        let mut fresh: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
        for (name, addr) in entries {
            let addrs = fresh.entry(normalize(&name)).or_default();
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        *self.write() = fresh;
    }

    /// Other names asked by `client` go to `upstreams` (empty: the default).
    pub fn set_forwarders(&self, client: Ipv4Addr, upstreams: Vec<SocketAddr>) {
        let mut map = self.forwarders.write().unwrap_or_else(|e| e.into_inner());
        if upstreams.is_empty() {
            map.remove(&IpAddr::V4(client));
        } else {
            map.insert(IpAddr::V4(client), upstreams);
        }
    }

    fn forwarders_of(&self, client: IpAddr) -> Option<Vec<SocketAddr>> {
        let map = self.forwarders.read().unwrap_or_else(|e| e.into_inner());
        map.get(&client.to_canonical()).cloned()
    }

    /// Drops `addr` from every name (a container left the network) and names left empty.
    pub fn remove_addr(&self, addr: Ipv4Addr) {
        self.set_forwarders(addr, Vec::new());
        self.write().retain(|_, addrs| {
            addrs.retain(|a| *a != addr);
            !addrs.is_empty()
        });
    }

    /// The addresses of `name`, case-insensitively and with or without the trailing dot.
    pub fn lookup(&self, name: &str) -> Vec<Ipv4Addr> {
        self.read().get(&normalize(name)).cloned().unwrap_or_default()
    }

    // A writer that panicked cannot leave the map half-updated in a way that matters
    // more than losing DNS for the whole network, so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Vec<Ipv4Addr>>> {
        self.names.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Vec<Ipv4Addr>>> {
        self.names.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A running DNS server for one network. Dropping it stops serving at once.
pub struct DnsServer {
    local_addr: SocketAddr,
    /// Holds copies of the sockets across daemon restarts, when given.
    keeper: Option<Keeper>,
    /// The UDP and TCP loops; each owns its per-query tasks, so aborting a loop aborts those too.
    tasks: JoinSet<()>,
    /// Tells the loops to stop; they then wait for their per-query tasks, which hold the
    /// UDP socket, so `shutdown` returns only once the port is free.
    stop: watch::Sender<()>,
}

impl DnsServer {
    #[cfg(test)]
    /// Serves UDP and TCP on `bind` (the network's gateway IP, port 53; port 0 picks one
    /// port free for both). Bind a specific address, not a wildcard, so UDP answers leave
    /// from the address the container asked. Known names are answered from `records`,
    /// everything else is relayed to `upstreams` in order (UDP, ~2 s each); SERVFAIL if none answers.
    pub async fn start(bind: SocketAddr, records: Records, upstreams: Vec<SocketAddr>) -> io::Result<DnsServer> {
        Self::start_with_timeout(bind, records, upstreams, UPSTREAM_TIMEOUT, None).await
    }

    /// Like `start`, with the sockets held by `keeper` too: a restarted
    /// daemon takes back the same sockets, with the queries that arrived
    /// while it was down still queued in them.
    pub async fn start_kept(
        bind: SocketAddr,
        records: Records,
        upstreams: Vec<SocketAddr>,
        keeper: Keeper,
    ) -> io::Result<DnsServer> {
        Self::start_with_timeout(bind, records, upstreams, UPSTREAM_TIMEOUT, Some(keeper)).await
    }

    async fn start_with_timeout(
        bind: SocketAddr,
        records: Records,
        upstreams: Vec<SocketAddr>,
        upstream_timeout: Duration,
        keeper: Option<Keeper>,
    ) -> io::Result<DnsServer> {
        let (udp, tcp) = match &keeper {
            Some(k) => bind_kept(bind, k).await?,
            None => bind_pair(bind).await?,
        };
        let local_addr = udp.local_addr()?;
        let handler = Arc::new(Handler { records, upstreams, upstream_timeout });
        let (stop, stopped) = watch::channel(());
        let mut tasks = JoinSet::new();
        tasks.spawn(serve_udp(Arc::new(udp), handler.clone(), stopped.clone()));
        tasks.spawn(serve_tcp(tcp, handler, stopped));
        debug!(%local_addr, "dns server started");
        Ok(DnsServer { local_addr, keeper, tasks, stop })
    }

    #[cfg(test)]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving and waits until the sockets are closed, so the address can be bound again.
    pub async fn shutdown(mut self) {
        if let Some(k) = &self.keeper {
            for key in kept_keys(self.local_addr) {
                if let Err(e) = k.del(&key) {
                    warn!("socket keeper: {e}");
                }
            }
        }
        // Errors only when the loops are already gone, which is the goal anyway.
        let _ = self.stop.send(());
        while self.tasks.join_next().await.is_some() {}
        debug!(local_addr = %self.local_addr, "dns server stopped");
    }
}

/// The keeper's names of the UDP and TCP sockets on `addr`.
fn kept_keys(addr: SocketAddr) -> [String; 2] {
    [format!("dns-udp-{addr}"), format!("dns-tcp-{addr}")]
}

/// The sockets the keeper holds for `bind` (left by the daemon before a
/// restart), else new ones, handed to the keeper.
async fn bind_kept(bind: SocketAddr, keeper: &Keeper) -> io::Result<(UdpSocket, TcpListener)> {
    use std::os::fd::AsFd;
    let [udp_key, tcp_key] = kept_keys(bind);
    if let (Some(udp), Some(tcp)) = (keeper.get(&udp_key)?, keeper.get(&tcp_key)?) {
        let udp = std::net::UdpSocket::from(udp);
        let tcp = std::net::TcpListener::from(tcp);
        if udp.local_addr()? == bind && tcp.local_addr()? == bind {
            udp.set_nonblocking(true)?;
            tcp.set_nonblocking(true)?;
            debug!(%bind, "dns sockets taken back from the keeper");
            return Ok((UdpSocket::from_std(udp)?, TcpListener::from_std(tcp)?));
        }
    }
    let (udp, tcp) = bind_pair(bind).await?;
    keeper.put(&udp_key, udp.as_fd())?;
    keeper.put(&tcp_key, tcp.as_fd())?;
    Ok((udp, tcp))
}

/// Binds UDP and TCP on the same port; with port 0 the kernel's UDP pick may be taken for
/// TCP, so that case is retried.
async fn bind_pair(bind: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let attempts = if bind.port() == 0 { BIND_ATTEMPTS } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(bind).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}

async fn serve_udp(socket: Arc<UdpSocket>, handler: Arc<Handler>, mut stop: watch::Receiver<()>) {
    let mut queries = JoinSet::new();
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buf) => received,
            _ = stop.changed() => break,
        };
        let (len, src) = match received {
            Ok(received) => received,
            Err(e) => {
                warn!(error = %e, "dns udp receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while queries.try_join_next().is_some() {}
        if queries.len() >= MAX_UDP_IN_FLIGHT {
            debug!(%src, "dns udp query dropped: too many in flight");
            continue;
        }
        let query = buf[..len].to_vec();
        let (socket, handler) = (socket.clone(), handler.clone());
        queries.spawn(async move {
            if let Some(reply) = handler.answer(&query, Transport::Udp, src.ip()).await {
                if let Err(e) = socket.send_to(&reply, src).await {
                    debug!(%src, error = %e, "dns udp reply failed");
                }
            }
        });
    }
    queries.shutdown().await;
}

async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>, mut stop: watch::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, src) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "dns tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_TCP_CONNECTIONS {
            debug!(%src, "dns tcp connection refused: too many open");
            continue;
        }
        let handler = handler.clone();
        connections.spawn(async move {
            if let Err(e) = serve_tcp_connection(stream, src.ip(), &handler).await {
                trace!(%src, error = %e, "dns tcp connection closed");
            }
        });
    }
    connections.shutdown().await;
}

/// Answers the queries of one connection in order until the client closes or idles out.
async fn serve_tcp_connection(mut stream: TcpStream, client: IpAddr, handler: &Handler) -> io::Result<()> {
    loop {
        let query = match timeout(TCP_IDLE_TIMEOUT, read_framed(&mut stream)).await {
            Ok(read) => read?,
            Err(_) => return Ok(()),
        };
        if let Some(reply) = handler.answer(&query, Transport::Tcp, client).await {
            write_framed(&mut stream, &reply).await?;
        }
    }
}

/// Reads one DNS-over-TCP message (two-byte big-endian length, then the message).
async fn read_framed(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut msg = vec![0u8; usize::from(len)];
    stream.read_exact(&mut msg).await?;
    Ok(msg)
}

async fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::other("dns message too long"))?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// What both serving loops share: the names and where to forward the rest.
struct Handler {
    records: Records,
    upstreams: Vec<SocketAddr>,
    upstream_timeout: Duration,
}

impl Handler {
    /// The reply to one raw query, or `None` when it deserves no reply (not a query at all).
    async fn answer(&self, raw: &[u8], transport: Transport, client: IpAddr) -> Option<Vec<u8>> {
        let request = match Message::from_vec(raw) {
            Ok(request) => request,
            Err(e) => {
                trace!(error = %e, "dns query unparsable");
                return format_error(raw);
            }
        };
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        if request.metadata.op_code != OpCode::Query {
            return encode(&error_reply(&request, ResponseCode::NotImp));
        }
        if let Some(reply) = self.local_answer(&request) {
            return encode_local(reply, &request, transport);
        }
        match self.forward(raw, transport, client).await {
            Some(reply) => Some(reply),
            None => encode(&error_reply(&request, ResponseCode::ServFail)),
        }
    }

    /// An authoritative answer when the single question is about a known name: its A
    /// records, or no records (NOERROR) for other types, so clients do not go on to ask
    /// the host's resolvers about container names.
    fn local_answer(&self, request: &Message) -> Option<Message> {
        let [query] = request.queries.as_slice() else {
            return None;
        };
        if query.query_class() != DNSClass::IN {
            return None;
        }
        let addrs = self.records.lookup(&query.name().to_ascii());
        if addrs.is_empty() {
            return None;
        }
        trace!(name = %query.name(), qtype = %query.query_type(), "dns local answer");
        let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        reply.metadata = Metadata::response_from_request(&request.metadata);
        reply.metadata.authoritative = true;
        reply.metadata.recursion_available = true;
        reply.add_query(query.clone());
        if matches!(query.query_type(), RecordType::A | RecordType::ANY) {
            reply.add_answers(a_records(query, &addrs));
        }
        if request.edns.is_some() {
            reply.set_edns(our_edns());
        }
        Some(reply)
    }

    /// Relays the raw query to each upstream (the client's own, else the network's) in
    /// turn; the first reply wins, byte for byte. A TCP client that would get a truncated
    /// UDP reply gets the upstream's TCP reply instead.
    async fn forward(&self, raw: &[u8], transport: Transport, client: IpAddr) -> Option<Vec<u8>> {
        let own = self.records.forwarders_of(client);
        for &upstream in own.as_ref().unwrap_or(&self.upstreams) {
            let reply = match ask_udp(upstream, raw, self.upstream_timeout).await {
                Ok(reply) => reply,
                Err(e) => {
                    debug!(%upstream, error = %e, "dns upstream failed");
                    continue;
                }
            };
            if transport == Transport::Tcp && is_truncated(&reply) {
                match ask_tcp(upstream, raw, self.upstream_timeout).await {
                    Ok(full) => return Some(full),
                    Err(e) => debug!(%upstream, error = %e, "dns upstream tcp retry failed"),
                }
            }
            return Some(reply);
        }
        None
    }
}

fn a_records(query: &Query, addrs: &[Ipv4Addr]) -> Vec<Record> {
    addrs.iter().map(|addr| Record::from_rdata(query.name().clone(), LOCAL_TTL, RData::A(A(*addr)))).collect()
}

/// RFC 6891: a query with OPT gets an OPT back.
fn our_edns() -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_UDP_PAYLOAD);
    edns
}

fn error_reply(request: &Message, rcode: ResponseCode) -> Message {
    let mut reply = Message::new(request.metadata.id, MessageType::Response, request.metadata.op_code);
    reply.metadata = Metadata::response_from_request(&request.metadata);
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = rcode;
    reply.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        reply.set_edns(our_edns());
    }
    reply
}

/// FORMERR for a query we cannot parse, built from its raw header; nothing for non-queries
/// or scraps, so the server never answers answers.
fn format_error(raw: &[u8]) -> Option<Vec<u8>> {
    let header = raw.get(..12)?;
    if header[2] & 0x80 != 0 {
        return None;
    }
    let mut reply = vec![0u8; 12];
    reply[..2].copy_from_slice(&header[..2]);
    // QR set, opcode and RD copied; RA set; RCODE 1 (FORMERR); all counts zero.
    reply[2] = 0x80 | (header[2] & 0x79);
    reply[3] = 0x80 | 0x01;
    Some(reply)
}

fn encode(msg: &Message) -> Option<Vec<u8>> {
    match msg.to_vec() {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            warn!(error = %e, "dns reply encoding failed");
            None
        }
    }
}

/// Encodes a local answer; over UDP one that is too big for the client is replaced by an
/// empty truncated one, so the client retries over TCP.
fn encode_local(reply: Message, request: &Message, transport: Transport) -> Option<Vec<u8>> {
    let bytes = encode(&reply)?;
    if transport == Transport::Tcp || bytes.len() <= udp_limit(request) {
        return Some(bytes);
    }
    let mut truncated = reply.truncate();
    truncated.metadata.truncation = true;
    encode(&truncated)
}

/// The reply size the client can take over UDP: 512 bytes, or what its EDNS advertises.
fn udp_limit(request: &Message) -> usize {
    let advertised = request.edns.as_ref().map_or(512, Edns::max_payload);
    usize::from(advertised.clamp(512, MAX_UDP_PAYLOAD))
}

fn is_truncated(reply: &[u8]) -> bool {
    reply.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// Sends `query` to `upstream` over UDP and returns the first reply that matches its id.
/// A connected socket on a fresh ephemeral port ignores packets from anyone else and reports
/// a closed port at once (ICMP), so a dead upstream is skipped without waiting.
async fn ask_udp(upstream: SocketAddr, query: &[u8], wait: Duration) -> io::Result<Vec<u8>> {
    let socket = UdpSocket::bind(unspecified_for(upstream)).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    timeout(wait, async {
        loop {
            let len = socket.recv(&mut buf).await?;
            if is_reply_to(query, &buf[..len]) {
                return Ok(buf[..len].to_vec());
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
}

/// Asks `upstream` over TCP, for answers too big for UDP.
async fn ask_tcp(upstream: SocketAddr, query: &[u8], wait: Duration) -> io::Result<Vec<u8>> {
    timeout(wait, async {
        let mut stream = TcpStream::connect(upstream).await?;
        write_framed(&mut stream, query).await?;
        let reply = read_framed(&mut stream).await?;
        if is_reply_to(query, &reply) {
            Ok(reply)
        } else {
            Err(io::Error::other("reply does not match the query"))
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
}

/// Same id and the QR bit set: good enough since the socket only hears from the upstream.
fn is_reply_to(query: &[u8], reply: &[u8]) -> bool {
    reply.len() >= 12 && query.get(..2) == reply.get(..2) && reply[2] & 0x80 != 0
}

fn unspecified_for(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// The host's resolvers from a resolv.conf text (`nameserver` lines, IPv4 and IPv6, port 53),
/// in order and without duplicates. Loopback ones (e.g. systemd-resolved's 127.0.0.53) are
/// skipped only if `skip_loopback`: they work from the daemon's namespace but not from a
/// container's.
pub fn upstreams_from_resolv_conf(text: &str, skip_loopback: bool) -> Vec<SocketAddr> {
    let mut upstreams = Vec::new();
    for addr in text.lines().filter_map(nameserver) {
        let wanted = !(skip_loopback && addr.ip().to_canonical().is_loopback());
        if wanted && !upstreams.contains(&addr) {
            upstreams.push(addr);
        }
    }
    upstreams
}

/// The address of a `nameserver ADDR` line; IPv6 may carry a `%zone` (name or index).
fn nameserver(line: &str) -> Option<SocketAddr> {
    let mut words = line.split_whitespace();
    if words.next()? != "nameserver" {
        return None;
    }
    let word = words.next()?;
    let (ip, zone) = match word.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (word, None),
    };
    match (ip.parse::<IpAddr>().ok()?, zone) {
        (IpAddr::V6(ip), Some(zone)) => Some(SocketAddrV6::new(ip, 53, 0, scope_id(zone)?).into()),
        (ip, None) => Some(SocketAddr::new(ip, 53)),
        (IpAddr::V4(_), Some(_)) => None,
    }
}

fn scope_id(zone: &str) -> Option<u32> {
    if let Ok(index) = zone.parse() {
        return Some(index);
    }
    let name = CString::new(zone).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    const WAIT: Duration = Duration::from_secs(5);

    fn query(id: u16, name: &str, qtype: RecordType) -> Message {
        let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        msg
    }

    async fn ask_raw(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
        let socket = UdpSocket::bind(LOOPBACK).await.unwrap();
        socket.send_to(bytes, server).await.unwrap();
        let mut buf = vec![0u8; 65535];
        let (len, _) = timeout(WAIT, socket.recv_from(&mut buf)).await.unwrap().unwrap();
        buf.truncate(len);
        buf
    }

    async fn ask(server: SocketAddr, msg: &Message) -> Message {
        Message::from_vec(&ask_raw(server, &msg.to_vec().unwrap()).await).unwrap()
    }

    fn a_addrs(msg: &Message) -> Vec<Ipv4Addr> {
        msg.answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(A(ip)) => Some(ip),
                _ => None,
            })
            .collect()
    }

    /// The fake upstream's fixed answer: `missing.test` is NXDOMAIN, everything else one A record.
    fn fake_answer(raw: &[u8]) -> Vec<u8> {
        let request = Message::from_vec(raw).unwrap();
        let mut reply = error_reply(&request, ResponseCode::NoError);
        if request.queries[0].name().to_ascii() == "missing.test." {
            reply.metadata.response_code = ResponseCode::NXDomain;
        } else {
            reply.add_answers(a_records(&request.queries[0], &[Ipv4Addr::new(192, 0, 2, 7)]));
        }
        reply.to_vec().unwrap()
    }

    /// A UDP responder on loopback that answers every query with `answer(query)`.
    async fn fake_upstream(answer: fn(&[u8]) -> Vec<u8>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let socket = UdpSocket::bind(LOOPBACK).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            while let Ok((len, src)) = socket.recv_from(&mut buf).await {
                let _ = socket.send_to(&answer(&buf[..len]), src).await;
            }
        });
        (addr, task)
    }

    /// A loopback port with nothing listening: bound, then released.
    async fn closed_port() -> SocketAddr {
        UdpSocket::bind(LOOPBACK).await.unwrap().local_addr().unwrap()
    }

    fn sample_records() -> Records {
        let records = Records::new();
        records.set("web", vec![Ipv4Addr::new(10, 9, 0, 2)]);
        records.add("db", Ipv4Addr::new(10, 9, 0, 3));
        records.add("DB", Ipv4Addr::new(10, 9, 0, 4));
        records
    }

    async fn test_server(upstreams: Vec<SocketAddr>) -> DnsServer {
        let wait = Duration::from_millis(300);
        DnsServer::start_with_timeout(LOOPBACK, sample_records(), upstreams, wait, None).await.unwrap()
    }

    #[test]
    fn records_normalize_and_remove() {
        let records = sample_records();
        assert_eq!(records.lookup("Web."), vec![Ipv4Addr::new(10, 9, 0, 2)]);
        assert_eq!(records.lookup("db").len(), 2);
        records.add("db", Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(records.lookup("db").len(), 2, "add does not duplicate");

        records.add("alias", Ipv4Addr::new(10, 9, 0, 3));
        records.remove_addr(Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(records.lookup("db"), vec![Ipv4Addr::new(10, 9, 0, 4)]);
        assert!(records.lookup("alias").is_empty());
        assert!(!records.read().contains_key("alias"), "empty names are dropped");

        records.set("web", vec![]);
        assert!(records.lookup("web").is_empty());
    }

    #[test]
    fn parses_resolv_conf() {
        let text = "# comment\nsearch example.com\nnameserver 127.0.0.53\n\
                    nameserver 192.0.2.1 \n  nameserver\t2001:db8::1\nnameserver ::1\n\
                    nameserver 192.0.2.1\nnameserver fe80::1%3\nnameserver bogus\noptions edns0\n";
        let all: Vec<SocketAddr> = vec![
            "127.0.0.53:53".parse().unwrap(),
            "192.0.2.1:53".parse().unwrap(),
            "[2001:db8::1]:53".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
            "[fe80::1%3]:53".parse().unwrap(),
        ];
        assert_eq!(upstreams_from_resolv_conf(text, false), all);
        let remote: Vec<SocketAddr> = vec![all[1], all[2], all[4]];
        assert_eq!(upstreams_from_resolv_conf(text, true), remote);
        assert!(upstreams_from_resolv_conf("", true).is_empty());
    }

    #[tokio::test]
    async fn answers_known_names_case_insensitively() {
        let server = test_server(vec![]).await;
        let addr = server.local_addr();

        let reply = ask(addr, &query(1, "web.", RecordType::A)).await;
        assert_eq!(reply.metadata.id, 1);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert_eq!(a_addrs(&reply), vec![Ipv4Addr::new(10, 9, 0, 2)]);
        assert_eq!(reply.answers[0].ttl, LOCAL_TTL);

        let reply = ask(addr, &query(2, "dB", RecordType::A)).await;
        assert_eq!(a_addrs(&reply), vec![Ipv4Addr::new(10, 9, 0, 3), Ipv4Addr::new(10, 9, 0, 4)]);
        assert_eq!(reply.queries[0].name().to_ascii(), "dB.", "question echoed as asked");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn known_name_other_type_is_empty_noerror() {
        let server = test_server(vec![closed_port().await]).await;
        let mut aaaa = query(3, "WEB.", RecordType::AAAA);
        aaaa.set_edns(Edns::new());
        let reply = ask(server.local_addr(), &aaaa).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());
        assert!(reply.edns.is_some(), "EDNS query gets OPT back");
    }

    #[tokio::test]
    async fn relays_upstream_answer_exactly() {
        let (upstream, _task) = fake_upstream(fake_answer).await;
        let server = test_server(vec![closed_port().await, upstream]).await;

        let request = query(4, "example.test.", RecordType::A).to_vec().unwrap();
        assert_eq!(ask_raw(server.local_addr(), &request).await, fake_answer(&request));

        let request = query(5, "missing.test.", RecordType::A).to_vec().unwrap();
        let reply = ask_raw(server.local_addr(), &request).await;
        assert_eq!(reply, fake_answer(&request));
        assert_eq!(Message::from_vec(&reply).unwrap().metadata.response_code, ResponseCode::NXDomain);
    }

    #[tokio::test]
    async fn silent_upstream_is_skipped_after_timeout() {
        let silent = UdpSocket::bind(LOOPBACK).await.unwrap();
        let (upstream, _task) = fake_upstream(fake_answer).await;
        let server = test_server(vec![silent.local_addr().unwrap(), upstream]).await;
        let reply = ask(server.local_addr(), &query(6, "example.test", RecordType::A)).await;
        assert_eq!(a_addrs(&reply), vec![Ipv4Addr::new(192, 0, 2, 7)]);
    }

    #[tokio::test]
    async fn servfail_without_reachable_upstream() {
        let server = test_server(vec![closed_port().await]).await;
        let reply = ask(server.local_addr(), &query(7, "example.test.", RecordType::A)).await;
        assert_eq!(reply.metadata.id, 7);
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(reply.queries.len(), 1);

        let none = test_server(vec![]).await;
        let reply = ask(none.local_addr(), &query(8, "example.test.", RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    }

    #[tokio::test]
    async fn garbage_gets_formerr_and_answers_are_ignored() {
        let server = test_server(vec![]).await;
        let mut garbage = vec![0u8; 12];
        garbage[..2].copy_from_slice(&[0xab, 0xcd]);
        garbage[5] = 1; // one question that is not there
        let reply = ask_raw(server.local_addr(), &garbage).await;
        assert_eq!(&reply[..2], &[0xab, 0xcd]);
        assert_eq!(reply[3] & 0x0f, 1);
        assert!(format_error(&fake_answer(&query(9, "x.", RecordType::A).to_vec().unwrap())).is_none());
    }

    async fn ask_tcp_server(server: SocketAddr, msg: &Message) -> Message {
        let mut stream = TcpStream::connect(server).await.unwrap();
        write_framed(&mut stream, &msg.to_vec().unwrap()).await.unwrap();
        let reply = timeout(WAIT, read_framed(&mut stream)).await.unwrap().unwrap();
        Message::from_vec(&reply).unwrap()
    }

    #[tokio::test]
    async fn answers_over_tcp() {
        let (upstream, _task) = fake_upstream(fake_answer).await;
        let server = test_server(vec![upstream]).await;
        let reply = ask_tcp_server(server.local_addr(), &query(10, "Web", RecordType::A)).await;
        assert_eq!(a_addrs(&reply), vec![Ipv4Addr::new(10, 9, 0, 2)]);
        let reply = ask_tcp_server(server.local_addr(), &query(11, "example.test", RecordType::A)).await;
        assert_eq!(a_addrs(&reply), vec![Ipv4Addr::new(192, 0, 2, 7)]);
    }

    #[tokio::test]
    async fn tcp_client_gets_full_answer_when_upstream_udp_truncates() {
        fn truncated(raw: &[u8]) -> Vec<u8> {
            let mut reply = Message::from_vec(raw).unwrap().truncate();
            reply.metadata.message_type = MessageType::Response;
            reply.to_vec().unwrap()
        }
        let (upstream, _udp) = fake_upstream(truncated).await;
        let listener = TcpListener::bind(upstream).await.unwrap();
        let _tcp = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let request = read_framed(&mut stream).await.unwrap();
            write_framed(&mut stream, &fake_answer(&request)).await.unwrap();
        });
        let server = test_server(vec![upstream]).await;

        let udp = ask(server.local_addr(), &query(15, "example.test", RecordType::A)).await;
        assert!(udp.metadata.truncation, "UDP clients get the truncated answer as-is");
        let tcp = ask_tcp_server(server.local_addr(), &query(16, "example.test", RecordType::A)).await;
        assert!(!tcp.metadata.truncation);
        assert_eq!(a_addrs(&tcp), vec![Ipv4Addr::new(192, 0, 2, 7)]);
    }

    #[tokio::test]
    async fn big_local_answer_truncates_over_udp_only() {
        let records = Records::new();
        let many: Vec<Ipv4Addr> = (1..=60).map(|i| Ipv4Addr::new(10, 9, 1, i)).collect();
        records.set("many", many.clone());
        let server = DnsServer::start(LOOPBACK, records, vec![]).await.unwrap();
        let reply = ask(server.local_addr(), &query(12, "many", RecordType::A)).await;
        assert!(reply.metadata.truncation);
        assert!(reply.answers.is_empty());
        let reply = ask_tcp_server(server.local_addr(), &query(13, "many", RecordType::A)).await;
        assert_eq!(a_addrs(&reply), many);
    }

    #[tokio::test]
    async fn shutdown_and_drop_release_the_address() {
        let silent = UdpSocket::bind(LOOPBACK).await.unwrap();
        let first = test_server(vec![silent.local_addr().unwrap()]).await;
        let addr = first.local_addr();
        // A query still waiting on its upstream must not keep the port bound.
        let client = UdpSocket::bind(LOOPBACK).await.unwrap();
        let request = query(14, "example.test", RecordType::A).to_vec().unwrap();
        client.send_to(&request, addr).await.unwrap();
        let mut buf = [0u8; 512];
        timeout(WAIT, silent.recv_from(&mut buf)).await.unwrap().unwrap();
        first.shutdown().await;
        let second = DnsServer::start(addr, sample_records(), vec![]).await.unwrap();
        assert_eq!(second.local_addr(), addr);
        drop(second);
        tokio::task::yield_now().await;
        // Abort on drop is asynchronous; rebinding may need a moment.
        let mut rebound = None;
        for _ in 0..50 {
            if let Ok(third) = DnsServer::start(addr, sample_records(), vec![]).await {
                rebound = Some(third);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(rebound.is_some());
    }
}
