//! `TcpProxy`: a tiny TCP forwarder between the engine and a service (MariaDB), which a test can
//! switch "down" — every current connection is cut and new ones are dropped as soon as they are
//! accepted — and "up" again, to play an outage of a service the test cannot stop by itself (the
//! shared MariaDB server).
//!
//! It runs on plain threads: one accepting, two per forwarded connection (one per direction).
//! The listener stays bound from start to `Drop`, so its port can never be taken by anyone else
//! while the proxy is down; "down" answers a new connection by closing it at once, which a client
//! sees as a failed connect, just like a refused one. It can also be "stalled": connections stay
//! up, but nothing crosses until it is resumed, as with a server that hangs or a network that
//! loses every packet for a while. `Drop` cuts every connection and joins every thread it
//! started: nothing outlives the proxy.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Condvar, Mutex, MutexGuard,
    },
    thread::JoinHandle,
    time::Duration,
};

/// How long the proxy waits to reach the target for one accepted connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One forwarded connection: both ends, so `down` and `Drop` can cut it, and its two pump
/// threads, so they can be joined.
struct Link {
    client: TcpStream,
    server: TcpStream,
    pumps: Vec<JoinHandle<()>>,
}

impl Link {
    fn cut(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    /// Cuts the connection and waits for its threads.
    fn close(self) {
        self.cut();
        for pump in self.pumps {
            let _ = pump.join();
        }
    }

    fn ended(&self) -> bool {
        self.pumps.iter().all(JoinHandle::is_finished)
    }
}

struct Links {
    /// False while the proxy is down. Read and changed under the same lock as `open`, so a
    /// connection accepted just before `down` is either cut by it or never forwarded.
    up: bool,
    open: Vec<Link>,
}

struct Shared {
    target: SocketAddr,
    stopping: AtomicBool,
    links: Mutex<Links>,
    /// True while stalled: every pump holds what it read until this turns false.
    stalled: Mutex<bool>,
    resumed: Condvar,
}

impl Shared {
    fn links(&self) -> MutexGuard<'_, Links> {
        // A panicking pump thread must not make the proxy unusable (or its Drop panic).
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_stalled(&self, stalled: bool) {
        *self.stalled.lock().unwrap_or_else(|e| e.into_inner()) = stalled;
        self.resumed.notify_all();
    }

    fn wait_while_stalled(&self) {
        let stalled = self.stalled.lock().unwrap_or_else(|e| e.into_inner());
        drop(
            self.resumed
                .wait_while(stalled, |stalled| *stalled)
                .unwrap_or_else(|e| e.into_inner()),
        );
    }
}

/// A forwarder from a free loopback port to `target`; up when started.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy's port");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            target,
            stopping: AtomicBool::new(false),
            links: Mutex::new(Links {
                up: true,
                open: Vec::new(),
            }),
            stalled: Mutex::new(false),
            resumed: Condvar::new(),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("tcp-proxy-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared))
                .expect("the proxy's accept thread")
        };
        TcpProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where clients connect: `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Holds every byte in flight, both ways, on every connection (those open now and those made
    /// meanwhile) until `resume`: to a client the service is up but answers nothing, like a hung
    /// server, or a network that lost every packet for a while.
    pub fn stall(&self) {
        self.shared.set_stalled(true);
    }

    /// Lets what `stall` held go through, in order, and forwards as before.
    pub fn resume(&self) {
        self.shared.set_stalled(false);
    }

    /// Cuts every current connection and drops new ones until `up` (a stall ends with them).
    /// Returns once every cut connection's threads have finished.
    pub fn down(&self) {
        let cut = {
            let mut links = self.shared.links();
            links.up = false;
            std::mem::take(&mut links.open)
        };
        // Cut before a stall is let go: what a pump held then goes nowhere.
        for link in &cut {
            link.cut();
        }
        self.shared.set_stalled(false);
        for link in cut {
            link.close();
        }
    }

    /// Forwards new connections again.
    pub fn up(&self) {
        self.shared.links().up = true;
    }

    /// Whether new connections are forwarded now.
    pub fn is_up(&self) -> bool {
        self.shared.links().up
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.down();
        // The accept thread blocks in `accept`: a connection of our own wakes it to see
        // `stopping`. If even that fails the listener is broken and the thread has ended.
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // A connection accepted between `down` and the wake-up is cut here.
        self.down();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let client = match accepted {
            Ok((client, _)) => client,
            // E.g. a client that gave up before we accepted it; the listener is still fine.
            Err(_) => continue,
        };
        if !shared.links().up {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        if let Err(error) = forward(client, shared) {
            // The client's connection is dropped: to it, the service is down.
            eprintln!("tcp proxy: not forwarded to {}: {error}", shared.target);
        }
    }
}

/// Connects to the target and starts the two pumps of `client`'s connection.
fn forward(client: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    let server = TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT)?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut links = shared.links();
    if !links.up {
        // `down` came while we connected: this connection never starts.
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return Ok(());
    }
    // Join the threads of connections that ended by themselves, so they do not pile up.
    let (ended, open): (Vec<Link>, Vec<Link>) = std::mem::take(&mut links.open)
        .into_iter()
        .partition(Link::ended);
    links.open = open;
    for link in ended {
        link.close();
    }
    let mut link = Link {
        client,
        server,
        pumps: Vec::new(),
    };
    // Registered before the pumps start, so whatever fails below still cuts and joins them.
    let started = (|| {
        let upstream = pump(link.client.try_clone()?, link.server.try_clone()?, shared)?;
        link.pumps.push(upstream);
        let downstream = pump(link.server.try_clone()?, link.client.try_clone()?, shared)?;
        link.pumps.push(downstream);
        Ok(())
    })();
    if started.is_err() {
        link.close();
    } else {
        links.open.push(link);
    }
    started
}

/// Copies `from` to `to` until either end closes, then closes both (so the other direction ends
/// too). While the proxy is stalled, what it read waits.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    shared: &Arc<Shared>,
) -> io::Result<JoinHandle<()>> {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("tcp-proxy-pump".into())
        .spawn(move || {
            let mut buffer = vec![0; 16 * 1024];
            loop {
                let read = match from.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                shared.wait_while_stalled();
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port; each connection echoes until its client closes.
    fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            // Three connections in these tests, then the server ends.
            for stream in listener.incoming().take(3) {
                let mut stream = stream.unwrap();
                std::thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let _ = io::copy(&mut reader, &mut stream);
                });
            }
        });
        (addr, handle)
    }

    fn echo_once(stream: &mut TcpStream, text: &[u8]) -> io::Result<Vec<u8>> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(text)?;
        let mut got = vec![0; text.len()];
        stream.read_exact(&mut got)?;
        Ok(got)
    }

    #[test]
    fn forwards_cuts_refuses_and_forwards_again() {
        let (echo, server) = echo_server();
        let proxy = TcpProxy::start(echo);
        let mut first = TcpStream::connect(proxy.addr()).unwrap();
        assert_eq!(echo_once(&mut first, b"hello").unwrap(), b"hello");

        proxy.down();
        assert!(!proxy.is_up());
        assert!(
            echo_once(&mut first, b"again").is_err(),
            "a connection open at `down` is cut"
        );
        // A new connection is accepted by the kernel, then closed by the proxy at once.
        let refused = TcpStream::connect(proxy.addr()).and_then(|mut s| echo_once(&mut s, b"x"));
        assert!(refused.is_err(), "a connection made while down is dropped");

        proxy.up();
        let mut second = TcpStream::connect(proxy.addr()).unwrap();
        assert_eq!(echo_once(&mut second, b"back").unwrap(), b"back");
        drop(second);
        drop(proxy);
        // The echo server saw exactly the two forwarded connections; a third ends it.
        drop(TcpStream::connect(echo));
        server.join().unwrap();
    }

    #[test]
    fn a_stall_holds_every_byte_until_resumed_then_passes_them_in_order() {
        let (echo, _server) = echo_server();
        let proxy = TcpProxy::start(echo);
        let mut open = TcpStream::connect(proxy.addr()).unwrap();
        assert_eq!(echo_once(&mut open, b"before").unwrap(), b"before");

        proxy.stall();
        open.write_all(b"held").unwrap();
        open.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut got = [0; 4];
        let held = open.read(&mut got);
        assert!(
            held.as_ref().is_err_and(|e| matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )),
            "nothing answers while stalled: {held:?}"
        );

        proxy.resume();
        open.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        open.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"held", "what was held arrives once resumed");
        assert_eq!(echo_once(&mut open, b"after").unwrap(), b"after");
    }

    #[test]
    fn down_ends_a_stall_and_cuts_its_connections() {
        let (echo, _server) = echo_server();
        let proxy = TcpProxy::start(echo);
        let mut open = TcpStream::connect(proxy.addr()).unwrap();
        proxy.stall();
        open.write_all(b"held").unwrap();
        // Returns only once the pump holding "held" has ended.
        proxy.down();
        assert!(echo_once(&mut open, b"x").is_err(), "the connection is cut");
    }
}
