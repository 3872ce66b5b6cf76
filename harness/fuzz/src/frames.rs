//! The input format of the stateful targets (the roles, the message layer,
//! the DTLS server): a script of frames, each what one event brings to the
//! endpoint under test.
//!
//! ```text
//! frame = kind:u8  length:u16 (big-endian)  data:length bytes
//! kind  = bits 0-1: op (0 Deliver, 1 Reply, 2 Action, 3 Advance)
//!         bit 2:    from the secondary peer instead of the primary one
//! ```
//!
//! A length running past the end takes what is left; fewer than three bytes
//! left end the script. Any byte string is therefore a script, mutations of
//! the header bytes are meaningful, and a frame-aware mutator can rewrite
//! one frame's data and fix its length ([`encode`]).

/// What a frame asks the harness to do; each target documents what
/// [`Op::Action`] means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Hand `data` to the endpoint as a datagram.
    Deliver,
    /// Like `Deliver`, after giving `data` the message id and token of the
    /// last datagram the endpoint sent to that peer, so that a mutated
    /// response still answers the request it was captured for.
    Reply,
    /// A target-specific call the endpoint's owner would make (a request of
    /// the server, a value change on the client...), chosen by `data`.
    Action,
    /// Advance the fake clock by `data` read as a big-endian number of
    /// milliseconds (up to 4 bytes), or to the endpoint's next deadline when
    /// `data` is empty, then fire what is due.
    Advance,
}

/// One decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub op: Op,
    pub secondary: bool,
    pub data: &'a [u8],
}

impl Frame<'_> {
    /// The frame's header byte.
    pub fn kind(&self) -> u8 {
        let op = match self.op {
            Op::Deliver => 0,
            Op::Reply => 1,
            Op::Action => 2,
            Op::Advance => 3,
        };
        op | if self.secondary { 4 } else { 0 }
    }

    /// The milliseconds of an [`Op::Advance`] frame (`None`: to the next deadline).
    pub fn millis(&self) -> Option<u64> {
        if self.data.is_empty() {
            return None;
        }
        Some(
            self.data
                .iter()
                .take(4)
                .fold(0u64, |acc, b| acc << 8 | u64::from(*b)),
        )
    }
}

/// Header bytes before each frame's data.
pub const HEADER_LEN: usize = 3;

/// Reads a script.
pub fn parse(input: &[u8]) -> Vec<Frame<'_>> {
    let mut frames = Vec::new();
    let mut rest = input;
    while rest.len() >= HEADER_LEN {
        let kind = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let body = &rest[HEADER_LEN..];
        let len = len.min(body.len());
        let op = match kind & 3 {
            0 => Op::Deliver,
            1 => Op::Reply,
            2 => Op::Action,
            _ => Op::Advance,
        };
        frames.push(Frame {
            op,
            secondary: kind & 4 != 0,
            data: &body[..len],
        });
        rest = &body[len..];
    }
    frames
}

/// Writes frames as a script; data longer than 65535 bytes is cut.
pub fn encode<'a>(frames: impl IntoIterator<Item = Frame<'a>>) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        push(&mut out, f.kind(), f.data);
    }
    out
}

/// Appends one frame.
pub fn push(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    let data = &data[..data.len().min(usize::from(u16::MAX))];
    out.push(kind);
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// Builds scripts in code (seeds, captures).
#[derive(Debug, Default, Clone)]
pub struct Script {
    bytes: Vec<u8>,
}

impl Script {
    pub fn new() -> Self {
        Script::default()
    }

    pub fn deliver(mut self, secondary: bool, datagram: &[u8]) -> Self {
        push(&mut self.bytes, u8::from(secondary) << 2, datagram);
        self
    }

    pub fn reply(mut self, secondary: bool, datagram: &[u8]) -> Self {
        push(&mut self.bytes, 1 | u8::from(secondary) << 2, datagram);
        self
    }

    pub fn action(mut self, secondary: bool, data: &[u8]) -> Self {
        push(&mut self.bytes, 2 | u8::from(secondary) << 2, data);
        self
    }

    pub fn advance_ms(mut self, ms: u32) -> Self {
        push(&mut self.bytes, 3, &ms.to_be_bytes());
        self
    }

    pub fn advance_to_deadline(mut self) -> Self {
        push(&mut self.bytes, 3, &[]);
        self
    }

    pub fn push_frame(&mut self, kind: u8, data: &[u8]) {
        push(&mut self.bytes, kind, data);
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Gives `reply` the message id and token of `request` (both CoAP), keeping
/// its type, code, options and payload; returns `reply` unchanged when
/// either is too short to carry a header or its token.
pub fn answer_to(request: &[u8], reply: &[u8]) -> Vec<u8> {
    let (Some(req_tkl), Some(rep_tkl)) = (token_len(request), token_len(reply)) else {
        return reply.to_vec();
    };
    let mut out = Vec::with_capacity(reply.len() + req_tkl);
    out.push(reply[0] & 0xf0 | request[0] & 0x0f);
    out.push(reply[1]);
    out.extend_from_slice(&request[2..4 + req_tkl]);
    out.extend_from_slice(&reply[4 + rep_tkl..]);
    out
}

fn token_len(datagram: &[u8]) -> Option<usize> {
    let tkl = usize::from(*datagram.first()? & 0x0f);
    (tkl <= 8 && datagram.len() >= 4 + tkl).then_some(tkl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_round_trip() {
        let bytes = Script::new()
            .deliver(false, b"abc")
            .reply(true, b"")
            .action(false, &[7])
            .advance_ms(1500)
            .advance_to_deadline()
            .into_bytes();
        let frames = parse(&bytes);
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[0].data, b"abc");
        assert_eq!((frames[1].op, frames[1].secondary), (Op::Reply, true));
        assert_eq!(frames[3].millis(), Some(1500));
        assert_eq!(frames[4].millis(), None);
        assert_eq!(encode(frames), bytes);
    }

    #[test]
    fn any_bytes_parse() {
        assert!(parse(&[]).is_empty());
        assert!(parse(&[0, 0]).is_empty());
        let f = parse(&[1, 0xff, 0xff, 9]);
        assert_eq!(f[0].data, &[9]);
    }

    #[test]
    fn answers_take_the_request_id_and_token() {
        let request = [0x42, 0x01, 0x12, 0x34, 0xaa, 0xbb, 0xb1, b'x'];
        let reply = [0x61, 0x45, 0, 0, 0xcc, 0xff, b'v'];
        assert_eq!(
            answer_to(&request, &reply),
            vec![0x62, 0x45, 0x12, 0x34, 0xaa, 0xbb, 0xff, b'v']
        );
        assert_eq!(answer_to(&request, &[1]), vec![1]);
    }
}
