//! Free loopback ports for the servers tests start.
//!
//! Ports are picked at random *below* the kernel's ephemeral range and checked by binding them:
//! ports from `bind(127.0.0.1:0)` come from the same range as the local ports of outgoing
//! connections, and the sentinels open many (reconnecting to a killed server every second), so
//! such a port could be taken while its server is down — or a sentinel could connect to itself
//! on it (TCP simultaneous open) and believe the server is back.

use std::{collections::HashSet, fs, net::TcpListener, sync::Mutex};

/// `127.0.0.1:port`.
pub fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// `n` distinct free loopback ports, chosen below the ephemeral range (see the module docs),
/// never handed out twice by this process.
pub fn free_ports(n: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low);
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    let mut tries = 0;
    while ports.len() < n {
        tries += 1;
        let port = if high > low + 1000 && tries < 10_000 {
            low + (rand::random::<u32>() % u32::from(high - low)) as u16
        } else {
            0
        };
        if port != 0 && handed.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            let port = l.local_addr().expect("local addr").port();
            if !handed.contains(&port) && !ports.contains(&port) {
                ports.push(port);
                listeners.push(l);
            }
        }
    }
    handed.extend(&ports);
    ports
}
