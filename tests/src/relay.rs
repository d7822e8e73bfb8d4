//! A TCP relay from a port on the loopback of a host's network namespace to the same port on the test process's own
//! loopback (the root namespace's). It lets a service the test starts on the root loopback, which the machine's
//! Docker engine reaches (a registry on `127.0.0.1` is one Docker trusts over plain HTTP by default), be reached by
//! the same address from inside a host too, so one image reference works on both engines. No route, no address and
//! no traffic leaves loopback: the listening socket is made inside the host's namespace, the connecting ones in the
//! root namespace, and bytes are copied between them in this process.

use anyhow::Context as _;
use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A running relay; stops accepting when dropped (connections under way end with their peers).
pub struct LoopbackRelay {
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl LoopbackRelay {
    /// Relays `127.0.0.1:port` in network namespace `ns` (a name under `/run/netns`) to `127.0.0.1:port` here.
    pub fn start(ns: &str, port: u16) -> anyhow::Result<LoopbackRelay> {
        // a socket stays in the namespace it was made in: make the listener in a thread that moved there
        let listener = crate::netns::in_netns(ns, || {
            let l = TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("binding 127.0.0.1:{port}"))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let accept = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inside, _)) => {
                        let _ = inside.set_nonblocking(false);
                        if let Ok(outside) = TcpStream::connect(("127.0.0.1", port)) {
                            pipe(inside, outside);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(LoopbackRelay { stop, accept: Some(accept) })
    }
}

/// Copies both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else { return };
    let one_way = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    one_way(a, b2);
    one_way(b, a2);
}

impl Drop for LoopbackRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}
