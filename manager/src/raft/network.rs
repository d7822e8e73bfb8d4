//! Raft messages over the QUIC transport. (wired in once the transport lands)
