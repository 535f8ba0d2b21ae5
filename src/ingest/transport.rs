//! Which RTP transport (TCP interleaved or UDP) the next RTSP session asks
//! for. With `transport = "auto"` a camera that refuses one transport, or
//! sends no media over it, is tried on the other straight away, and what
//! worked is remembered (in memory) for the next reconnect. Pure state, no
//! I/O, so the policy is unit-tested without a camera.

use crate::config::Transport;

/// A concrete transport for one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// RTP interleaved in the RTSP TCP connection.
    Tcp,
    /// RTP over UDP.
    Udp,
}

impl Proto {
    /// Lower-case name, as in the config and `/api/cameras`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// The other transport.
    pub fn other(self) -> Proto {
        match self {
            Proto::Tcp => Proto::Udp,
            Proto::Udp => Proto::Tcp,
        }
    }

    /// Upper-case name for log lines written for people.
    pub fn label(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }
}

/// Per-camera transport choice across reconnects.
#[derive(Debug)]
pub struct TransportChoice {
    mode: Transport,
    next: Proto,
    /// The transport of the last session that delivered video.
    worked: Option<Proto>,
    /// Whether the current round already switched once; a second transport
    /// failure in a row goes through the normal backoff instead of flapping.
    switched: bool,
}

impl TransportChoice {
    /// Starts with TCP (auto and tcp) or UDP (udp).
    pub fn new(mode: Transport) -> Self {
        let next = match mode {
            Transport::Udp => Proto::Udp,
            Transport::Auto | Transport::Tcp => Proto::Tcp,
        };
        Self {
            mode,
            next,
            worked: None,
            switched: false,
        }
    }

    /// The transport for the next attempt.
    pub fn next(&self) -> Proto {
        self.next
    }

    /// Whether the camera is on `auto`.
    pub fn is_auto(&self) -> bool {
        self.mode == Transport::Auto
    }

    /// A session over `p` delivered video: keep using it.
    pub fn delivered(&mut self, p: Proto) {
        self.worked = Some(p);
        self.next = p;
        self.switched = false;
    }

    /// A session over `p` failed for a reason that points at the transport
    /// (refused at SETUP/PLAY, or no media). Returns the transport to try
    /// immediately, or `None` when the caller should back off first.
    pub fn transport_failed(&mut self, p: Proto) -> Option<Proto> {
        if !self.is_auto() {
            return None;
        }
        if self.switched {
            // Both failed in this round: back off, then start again from
            // what last worked (or TCP).
            self.switched = false;
            self.next = self.worked.unwrap_or(Proto::Tcp);
            return None;
        }
        self.switched = true;
        self.next = p.other();
        Some(self.next)
    }

    /// A session over `p` failed for another reason (network, camera down):
    /// the transport got through SETUP, so the next round starts with it.
    pub fn other_failure(&mut self, p: Proto) {
        self.switched = false;
        if self.is_auto() {
            self.next = p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_once_then_remembers() {
        let mut c = TransportChoice::new(Transport::Auto);
        assert_eq!(c.next(), Proto::Tcp);
        assert_eq!(c.transport_failed(Proto::Tcp), Some(Proto::Udp));
        assert_eq!(c.next(), Proto::Udp);
        c.delivered(Proto::Udp);
        // A later network failure keeps UDP.
        c.other_failure(Proto::Udp);
        assert_eq!(c.next(), Proto::Udp);
        // UDP stops working (no media): the reverse fallback, to TCP.
        assert_eq!(c.transport_failed(Proto::Udp), Some(Proto::Tcp));
        assert_eq!(c.next(), Proto::Tcp);
    }

    #[test]
    fn both_failing_backs_off_and_restarts_from_what_worked() {
        let mut c = TransportChoice::new(Transport::Auto);
        c.delivered(Proto::Udp);
        assert_eq!(c.transport_failed(Proto::Udp), Some(Proto::Tcp));
        assert_eq!(c.transport_failed(Proto::Tcp), None);
        assert_eq!(c.next(), Proto::Udp);
        // The next round may switch again.
        assert_eq!(c.transport_failed(Proto::Udp), Some(Proto::Tcp));
    }

    #[test]
    fn forced_transports_never_switch() {
        for (mode, p) in [(Transport::Tcp, Proto::Tcp), (Transport::Udp, Proto::Udp)] {
            let mut c = TransportChoice::new(mode);
            assert_eq!(c.next(), p);
            assert_eq!(c.transport_failed(p), None);
            c.other_failure(p);
            assert_eq!(c.next(), p);
        }
    }
}
