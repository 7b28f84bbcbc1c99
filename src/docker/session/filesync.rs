//! The build's files, sent to the daemon through the session: `moby.filesync.v1.FileSync/DiffCopy`
//! as BuildKit's `session/filesync` receiver expects it (tonistiigi/fsutil `send.go`).
//!
//! The daemon opens one stream per local folder it needs (`dir-name`: `context` or
//! `dockerfile`), naming in the call's metadata what it wants (`include-patterns`,
//! `exclude-patterns`, `followpaths`; one header per value, URL-encoded when the key has an
//! `-encoded` twin). ecrship then:
//!
//! 1. sends a `STAT` packet for each entry of the walk ([`crate::context::sync`]), then one
//!    `STAT` without a stat to end the walk. An entry's id is its index among the `STAT`s;
//! 2. answers each `REQ` for an id with the file's content in `DATA` packets of at most 32 KiB
//!    and an empty `DATA` to end it (four files at a time, as fsutil's sender does);
//! 3. answers the daemon's `FIN` with its own and ends the stream at once: the receiver waits
//!    for the end of the stream after `FIN`, and would wait forever otherwise.
//!
//! A file that cannot be read, or changed size since its `STAT`, ends the stream with an `ERR`
//! packet, which fails the build; the cause is kept for ecrship's own error message.
//!
//! The packets are fsutil's `Packet` and `Stat` (`types/wire.proto`, `types/stat.proto`) with the
//! path and the link target as `bytes` rather than `string`: the same encoding on the wire, but
//! a file name that is not UTF-8 is sent as it is, as Go sends it.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use bollard::fsutil::types::packet::PacketType;
use futures_util::Stream;
use tokio::sync::{Semaphore, mpsc};
use tonic::metadata::MetadataMap;
use tonic::server::StreamingService;
use tonic::{Request, Response, Status, Streaming};

use crate::context::sync::{self, Entry, Filter};

/// fsutil's sender buffer: no `DATA` packet is larger.
const CHUNK: usize = 32 * 1024;
/// Files read and sent at once (fsutil's four sender workers).
const FILE_WORKERS: usize = 4;
/// Packets queued for the daemon.
const QUEUE: usize = 64;

/// A folder the daemon may ask for, by its local name.
#[derive(Debug, Clone)]
pub struct Local {
    /// The folder.
    pub root: PathBuf,
    /// The folder as the user wrote it, for messages.
    pub shown: PathBuf,
    /// Paths inside it that are never sent (ecrship's own outputs).
    pub leave_out: Vec<Vec<u8>>,
    /// What the inputs digest saw of it: every entry sent must still be that
    /// ([`crate::context::snapshot`]).
    pub snapshot: Option<Arc<crate::context::Snapshot>>,
}

/// The folders of one build, and the first error met while sending them.
#[derive(Debug, Default)]
pub struct Files {
    locals: HashMap<String, Local>,
    failure: Mutex<Option<String>>,
}

impl Files {
    pub fn new(locals: HashMap<String, Local>) -> Files {
        Files {
            locals,
            failure: Mutex::default(),
        }
    }

    /// Why sending a folder failed, when it did: the build's real cause.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn fail(&self, message: &str) {
        let mut slot = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert_with(|| message.to_owned());
    }
}

/// fsutil's `Packet`, with bytes where the `.proto` says string.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Packet {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub stat: Option<Stat>,
    #[prost(uint32, tag = "3")]
    pub id: u32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// fsutil's `Stat`, with bytes where the `.proto` says string.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Stat {
    #[prost(bytes = "vec", tag = "1")]
    pub path: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub mode: u32,
    #[prost(uint32, tag = "3")]
    pub uid: u32,
    #[prost(uint32, tag = "4")]
    pub gid: u32,
    #[prost(int64, tag = "5")]
    pub size: i64,
    #[prost(int64, tag = "6")]
    pub mod_time: i64,
    #[prost(bytes = "vec", tag = "7")]
    pub linkname: Vec<u8>,
    #[prost(int64, tag = "8")]
    pub devmajor: i64,
    #[prost(int64, tag = "9")]
    pub devminor: i64,
    #[prost(map = "string, bytes", tag = "10")]
    pub xattrs: HashMap<String, Vec<u8>>,
}

type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

/// `/moby.filesync.v1.FileSync/DiffCopy` over one build's [`Files`].
#[derive(Debug, Clone)]
pub struct DiffCopy(pub Arc<Files>);

impl StreamingService<Packet> for DiffCopy {
    type Response = Packet;
    type ResponseStream = PacketStream;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Response<PacketStream>, Status>> + Send>>;

    fn call(&mut self, request: Request<Streaming<Packet>>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.diff_copy(request).await })
    }
}

impl DiffCopy {
    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        let metadata = request.metadata();
        let name = values(metadata, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let Some(local) = self.0.locals.get(&name).cloned() else {
            tracing::debug!(
                "the daemon asked for the folder `{name}`, which this build does not have"
            );
            return Err(Status::not_found(format!(
                "no access allowed to dir {name:?}"
            )));
        };
        let include = values(metadata, "include-patterns");
        let exclude = values(metadata, "exclude-patterns");
        let follow = values(metadata, "followpaths");
        tracing::debug!(
            folder = %name,
            include = include.len(),
            exclude = exclude.len(),
            follow = follow.len(),
            "the daemon syncs a folder"
        );
        let filter = Filter::new(&local.root, &include, &exclude, &follow).map_err(|e| {
            let message = e.to_string();
            self.0.fail(&message);
            Status::invalid_argument(message)
        })?;

        let (tx, rx) = mpsc::channel::<Packet>(QUEUE);
        let ids: Arc<Mutex<HashMap<u32, Requested>>> = Arc::default();
        let snapshot = local.snapshot.clone();
        tokio::task::spawn_blocking({
            let (tx, ids, files) = (tx.clone(), Arc::clone(&ids), Arc::clone(&self.0));
            move || send_stats(&local, &filter, &tx, &ids, &files)
        });
        tokio::spawn(answer_requests(
            request.into_inner(),
            tx,
            ids,
            Arc::clone(&self.0),
            snapshot,
        ));
        // The stream ends right after the `FIN` (or an `ERR`), whoever still holds a sender.
        let stream = futures_util::stream::unfold((rx, false), |(mut rx, ended)| async move {
            if ended {
                return None;
            }
            let packet = rx.recv().await?;
            let last = matches!(
                PacketType::try_from(packet.r#type),
                Ok(PacketType::PacketFin | PacketType::PacketErr)
            );
            Some((Ok(packet), (rx, last)))
        });
        Ok(Response::new(Box::pin(stream) as PacketStream))
    }
}

/// A file the daemon may ask for: where it is read from, and its path in the folder.
#[derive(Debug, Clone)]
struct Requested {
    source: PathBuf,
    path: Vec<u8>,
    shown: PathBuf,
}

/// Walks the folder and queues one `STAT` per entry, then the end of the walk; registers the
/// id of every regular file for the daemon's requests. With a snapshot, an entry that is not
/// what the inputs digest saw stops the sync.
fn send_stats(
    local: &Local,
    filter: &Filter,
    tx: &mpsc::Sender<Packet>,
    ids: &Mutex<HashMap<u32, Requested>>,
    files: &Files,
) {
    let mut next_id: u32 = 0;
    let result = sync::walk(
        &local.root,
        filter,
        &local.leave_out,
        &local.shown,
        &mut |entry: Entry| {
            let rel = std::path::Path::new(std::ffi::OsStr::from_bytes(&entry.path));
            let shown = if local.shown == std::path::Path::new(".") {
                rel.to_path_buf()
            } else {
                local.shown.join(rel)
            };
            if let (Some(snapshot), Some(stamp)) = (&local.snapshot, entry.stamp) {
                snapshot.check(&entry.path, stamp, shown.clone())?;
            }
            if entry.is_regular() {
                let source = entry
                    .source
                    .clone()
                    .unwrap_or_else(|| local.root.join(std::ffi::OsStr::from_bytes(&entry.path)));
                ids.lock().unwrap_or_else(PoisonError::into_inner).insert(
                    next_id,
                    Requested {
                        source,
                        path: entry.path.clone(),
                        shown,
                    },
                );
            }
            next_id += 1;
            tx.blocking_send(stat_packet(entry))
                .map_err(|_| crate::context::ContextError::Cancelled)
        },
    );
    let last = match result {
        Ok(()) => packet(PacketType::PacketStat, 0, Vec::new()),
        Err(crate::context::ContextError::Cancelled) => return,
        Err(e) => {
            let message = e.to_string();
            files.fail(&message);
            packet(PacketType::PacketErr, 0, message.into_bytes())
        }
    };
    let _ = tx.blocking_send(last);
}

/// Reads the daemon's packets: a request per file it wants, then `FIN`.
async fn answer_requests(
    mut incoming: Streaming<Packet>,
    tx: mpsc::Sender<Packet>,
    ids: Arc<Mutex<HashMap<u32, Requested>>>,
    files: Arc<Files>,
    snapshot: Option<Arc<crate::context::Snapshot>>,
) {
    let workers = Arc::new(Semaphore::new(FILE_WORKERS));
    let mut sending = Vec::new();
    loop {
        let packet = match incoming.message().await {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(status) => {
                tracing::debug!("the file sync stream ended: {}", status.message());
                break;
            }
        };
        match PacketType::try_from(packet.r#type) {
            Ok(PacketType::PacketReq) => {
                let id = packet.id;
                let source = ids
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                let Some(requested) = source else {
                    let message = format!("invalid file id {id}");
                    let _ = tx
                        .send(self::packet(PacketType::PacketErr, 0, message.into_bytes()))
                        .await;
                    break;
                };
                let (tx, files) = (tx.clone(), Arc::clone(&files));
                let snapshot = snapshot.clone();
                let Ok(permit) = Arc::clone(&workers).acquire_owned().await else {
                    break;
                };
                sending.push(tokio::task::spawn_blocking(move || {
                    send_file(id, &requested, snapshot.as_deref(), &tx, &files);
                    drop(permit);
                }));
            }
            Ok(PacketType::PacketFin) => {
                // Every requested file is in: the receiver says so only after the last one.
                for task in sending.drain(..) {
                    let _ = task.await;
                }
                let _ = tx
                    .send(self::packet(PacketType::PacketFin, 0, Vec::new()))
                    .await;
                break;
            }
            Ok(PacketType::PacketErr) => {
                let message = String::from_utf8_lossy(&packet.data).into_owned();
                tracing::debug!("the daemon stopped the file sync: {message}");
                break;
            }
            _ => {}
        }
    }
}

/// One file's content as `DATA` packets, then the empty `DATA` that ends it; with a snapshot,
/// only when it was read whole and unchanged since the inputs digest read it.
fn send_file(
    id: u32,
    requested: &Requested,
    snapshot: Option<&crate::context::Snapshot>,
    tx: &mpsc::Sender<Packet>,
    files: &Files,
) {
    let source = &requested.source;
    let result = (|| {
        let mut file = std::fs::File::open(source)?;
        let expected = file.metadata()?.len();
        let mut sent = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            sent += n as u64;
            if tx
                .blocking_send(packet(PacketType::PacketData, id, buf[..n].to_vec()))
                .is_err()
            {
                return Ok(());
            }
        }
        if sent != expected {
            return Err(std::io::Error::other(
                "it changed size while it was being sent; retry when nothing writes to the context",
            ));
        }
        if let Some(snapshot) = snapshot {
            let stamp = crate::context::snapshot::Stamp::of(&file.metadata()?);
            if let Err(e) = snapshot.check(&requested.path, stamp, requested.shown.clone()) {
                return Err(std::io::Error::other(e.to_string()));
            }
        }
        Ok(())
    })();
    let last = match result {
        Ok(()) => packet(PacketType::PacketData, id, Vec::new()),
        Err(e) => {
            let message = format!("cannot send `{}`: {e}", source.display());
            files.fail(&message);
            packet(PacketType::PacketErr, 0, message.into_bytes())
        }
    };
    let _ = tx.blocking_send(last);
}

fn packet(kind: PacketType, id: u32, data: Vec<u8>) -> Packet {
    Packet {
        r#type: kind as i32,
        stat: None,
        id,
        data,
    }
}

fn stat_packet(entry: Entry) -> Packet {
    Packet {
        r#type: PacketType::PacketStat as i32,
        stat: Some(Stat {
            path: entry.path,
            mode: entry.mode,
            uid: 0,
            gid: 0,
            size: entry.size,
            mod_time: entry.mod_time_ns,
            linkname: entry.linkname,
            devmajor: entry.devmajor,
            devminor: entry.devminor,
            xattrs: HashMap::new(),
        }),
        id: 0,
        data: Vec::new(),
    }
}

/// Every value of a metadata key, one per header field; decoded when the daemon marked the key
/// `<key>-encoded: 1` (BuildKit ≥ 0.13 URL-encodes lists holding non-ASCII runes,
/// `session/filesync` `encodeOpts`).
fn values(metadata: &MetadataMap, key: &str) -> Vec<String> {
    let encoded = metadata
        .get(format!("{key}-encoded").as_str())
        .is_some_and(|v| v.as_encoded_bytes() == b"1");
    metadata
        .get_all(key)
        .iter()
        .map(|value| {
            let bytes = value.as_encoded_bytes();
            if encoded {
                query_unescape(bytes)
            } else {
                String::from_utf8_lossy(bytes).into_owned()
            }
        })
        .collect()
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a malformed escape stays as it is.
fn query_unescape(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_lists_are_read_one_value_per_header() {
        let mut m = MetadataMap::new();
        m.append("exclude-patterns", "node_modules".parse().unwrap());
        m.append("exclude-patterns", "!node_modules/keep".parse().unwrap());
        m.append("followpaths", "caf%C3%A9+menu".parse().unwrap());
        m.insert("followpaths-encoded", "1".parse().unwrap());
        assert_eq!(
            values(&m, "exclude-patterns"),
            ["node_modules", "!node_modules/keep"]
        );
        assert_eq!(values(&m, "followpaths"), ["café menu"]);
        assert!(values(&m, "include-patterns").is_empty());
        assert_eq!(query_unescape(b"100%"), "100%");
        assert_eq!(query_unescape(b"%zz%41"), "%zzA");
    }

    #[test]
    fn packets_carry_fsutil_stats() {
        let entry = Entry {
            path: b"src/a\xff.ex".to_vec(),
            mode: 0o644,
            size: 3,
            mod_time_ns: 1_700_000_000_123_456_789,
            linkname: Vec::new(),
            devmajor: 0,
            devminor: 0,
            source: None,
            stamp: None,
        };
        let p = stat_packet(entry);
        assert_eq!(p.r#type, PacketType::PacketStat as i32);
        let stat = p.stat.unwrap();
        assert_eq!((stat.uid, stat.gid, stat.size), (0, 0, 3));
        assert_eq!(stat.mod_time, 1_700_000_000_123_456_789);
        // On the wire as fsutil's Stat: field 1, length-delimited, the bytes as they are.
        let bytes = prost::Message::encode_to_vec(&stat);
        assert_eq!(&bytes[..2], &[0x0a, 9]);
        assert_eq!(&bytes[2..11], b"src/a\xff.ex");
        // The end of the walk is a STAT without a stat, never an empty one.
        let end = packet(PacketType::PacketStat, 0, Vec::new());
        assert!(end.stat.is_none());
    }
}
