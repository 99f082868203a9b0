//! Recorded operating-system inputs for tests that run the cycle without root: a `/proc` tree
//! written into a temporary directory (host files and processes with their socket fds), the
//! interfaces, the neighbour table, the listening sockets per port (changeable while the watch
//! runs), and a kernel log fed record by record.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use causeway_service::lock;

use pnet_datalink::NetworkInterface;

use super::{KernelLogReader, ListenerDump, Os};
use crate::host::neighbours::Neighbour;
use crate::host::sock_diag::DiagListener;

type Listeners = Arc<Mutex<HashMap<u16, Vec<DiagListener>>>>;

pub struct Recorded {
    proc: tempfile::TempDir,
    pub interfaces: Vec<NetworkInterface>,
    pub neighbours: Vec<Neighbour>,
    listeners: Listeners,
    kernel_log: Sender<Vec<u8>>,
    /// The reader's end until the kernel log is opened.
    unopened_log: Mutex<Option<Receiver<Vec<u8>>>>,
}

impl Recorded {
    /// A host with only a loopback interface, an empty `/proc` but for `uptime` (up
    /// `uptime_s`) and pid 1, no listeners and an empty kernel log.
    pub fn new(uptime_s: u64) -> Recorded {
        let (tx, rx) = channel();
        let os = Recorded {
            proc: tempfile::tempdir().expect("a temporary /proc"),
            interfaces: vec![interface("lo", 1, &["127.0.0.1/8", "::1/128"])],
            neighbours: Vec::new(),
            listeners: Listeners::default(),
            kernel_log: tx,
            unopened_log: Mutex::new(Some(rx)),
        };
        os.put("uptime", &format!("{uptime_s}.00 0.00\n"));
        os.process(1, 0, "systemd", "/sbin/init", "/init.scope", 1, &[]);
        os
    }

    /// Writes `text` to `name` under the recorded `/proc`, creating directories.
    pub fn put(&self, name: &str, text: &str) {
        let path = self.proc.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A process as `/proc/PID` shows it: `comm`, `cmdline` (words split at spaces), the
    /// unified `cgroup`, `stat` with its parent and start time (clock ticks after boot), and
    /// an fd per socket inode.
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &self,
        pid: u32,
        ppid: u32,
        comm: &str,
        cmdline: &str,
        cgroup: &str,
        start_ticks: u64,
        sockets: &[u64],
    ) {
        let dir = pid.to_string();
        self.put(&format!("{dir}/comm"), &format!("{comm}\n"));
        let argv: Vec<&str> = cmdline.split(' ').collect();
        self.put(&format!("{dir}/cmdline"), &(argv.join("\0") + "\0"));
        self.put(&format!("{dir}/cgroup"), &format!("0::{cgroup}\n"));
        // Fields 3.. after the name: state, ppid, then zeros up to starttime (field 22).
        let mut fields = vec!["S".to_owned(), ppid.to_string()];
        fields.extend(std::iter::repeat_n("0".to_owned(), 22 - 5));
        fields.push(start_ticks.to_string());
        self.put(
            &format!("{dir}/stat"),
            &format!("{pid} ({comm}) {}\n", fields.join(" ")),
        );
        let fd = self.proc.path().join(&dir).join("fd");
        std::fs::create_dir_all(&fd).unwrap();
        for (i, inode) in sockets.iter().enumerate() {
            std::os::unix::fs::symlink(format!("socket:[{inode}]"), fd.join((i + 3).to_string()))
                .unwrap();
        }
    }

    /// From now on, the listening sockets on `port` are `listeners`.
    pub fn listen(&self, port: u16, listeners: Vec<DiagListener>) {
        lock(&self.listeners).insert(port, listeners);
    }

    /// Appends a record to the kernel log: `prio,seq,usec,-;message`, as `/dev/kmsg` gives it.
    pub fn kernel_record(&self, record: &str) {
        let _ = self.kernel_log.send(record.as_bytes().to_vec());
    }
}

/// An interface `name` holding `nets` (`10.0.0.1/24`).
pub fn interface(name: &str, index: u32, nets: &[&str]) -> NetworkInterface {
    NetworkInterface {
        name: name.to_owned(),
        description: String::new(),
        index,
        mac: None,
        ips: nets.iter().map(|n| n.parse().unwrap()).collect(),
        flags: match name {
            "lo" => libc::IFF_LOOPBACK as u32 | libc::IFF_UP as u32,
            _ => libc::IFF_UP as u32,
        },
    }
}

/// A listening socket as sock_diag gives it.
pub fn listener(address: &str, inode: u64, uid: u32) -> DiagListener {
    DiagListener {
        address: address.parse().unwrap(),
        uid,
        inode,
        accept_queue: 0,
        backlog: 511,
    }
}

impl Os for Recorded {
    fn proc_root(&self) -> &Path {
        self.proc.path()
    }

    fn interfaces(&self) -> Vec<NetworkInterface> {
        self.interfaces.clone()
    }

    fn neighbours(&self) -> io::Result<Vec<Neighbour>> {
        Ok(self.neighbours.clone())
    }

    fn open_listener_dump(&self) -> io::Result<Box<dyn ListenerDump>> {
        Ok(Box::new(Arc::clone(&self.listeners)))
    }

    /// The log once; a second open finds it gone, as a denied `/dev/kmsg` would be.
    fn open_kernel_log(&self) -> io::Result<KernelLogReader> {
        let rx = lock(&self.unopened_log).take();
        let rx = rx.ok_or_else(|| io::Error::other("the recorded kernel log is open already"))?;
        Ok(KernelLogReader {
            reader: Box::new(Records(rx)),
            name: "(recorded)".to_owned(),
        })
    }

    fn try_packet_socket(&self) -> io::Result<()> {
        Err(io::ErrorKind::PermissionDenied.into())
    }

    fn may_be_own_address(&self, ip: IpAddr) -> bool {
        self.is_own_address(ip)
    }
}

impl ListenerDump for Listeners {
    fn listeners(&mut self, port: u16) -> io::Result<Vec<DiagListener>> {
        Ok(lock(self).get(&port).cloned().unwrap_or_default())
    }
}

/// One record per read, as `/dev/kmsg` reads; blocks until the next one is recorded, and ends
/// when the [`Recorded`] is dropped.
struct Records(Receiver<Vec<u8>>);

impl Read for Records {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.recv() {
            Ok(record) => {
                let n = record.len().min(buf.len());
                buf[..n].copy_from_slice(&record[..n]);
                Ok(n)
            }
            Err(_) => Ok(0),
        }
    }
}
