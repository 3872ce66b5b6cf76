//! Datagrams the kernel dropped before the server read them, because the
//! socket's receive buffer was full (a burst faster than the loop, a flood).
//! They never reach the server, so no log line can count them; Linux
//! counts them per socket in the `drops` column of /proc/net/udp and
//! /proc/net/udp6, found by the socket's inode. Elsewhere (or without
//! /proc) the count is unknown and said so (`None`), never taken as 0.

use std::net::UdpSocket;

/// Where to read one socket's drop count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceiveDrops {
    inode: Option<u64>,
}

impl ReceiveDrops {
    /// Looks up `socket`'s inode now, while this process holds its fd.
    pub(crate) fn of(socket: &UdpSocket) -> Self {
        ReceiveDrops {
            inode: inode_of(socket),
        }
    }

    /// Datagrams dropped for a full receive buffer since the socket opened.
    pub(crate) fn count(&self) -> Option<u64> {
        let inode = self.inode?;
        ["/proc/net/udp", "/proc/net/udp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(table).ok())
            .find_map(|text| drops_in_table(&text, inode))
    }
}

#[cfg(target_os = "linux")]
fn inode_of(socket: &UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn inode_of(_: &UdpSocket) -> Option<u64> {
    None
}

/// The `drops` column of the row whose `inode` column is `inode`. The
/// header names the columns; `drops` is the last, and `inode` the tenth
/// field of a row (the header splits `tx_queue rx_queue` and `tr tm->when`
/// differently from the rows, so the row's layout is taken as the kernel
/// prints it: `sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref
/// pointer drops`).
fn drops_in_table(text: &str, inode: u64) -> Option<u64> {
    text.lines().skip(1).find_map(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let row_inode: u64 = fields.get(9)?.parse().ok()?;
        if row_inode != inode {
            return None;
        }
        fields.last()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_drops_of_the_row_with_the_inode() {
        // Two rows as Linux 6 prints /proc/net/udp.
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            \x20 120: 0100007F:D8B2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0\n\
            \x20 121: 0100007F:1633 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 4343 2 0000000000000000 917\n";
        assert_eq!(drops_in_table(table, 4343), Some(917));
        assert_eq!(drops_in_table(table, 4242), Some(0));
        assert_eq!(drops_in_table(table, 1), None);
    }

    /// A real socket nobody reads, sent far more than its buffer holds:
    /// the kernel's count of what it dropped is what `count` reads.
    #[cfg(target_os = "linux")]
    #[test]
    fn counts_what_the_kernel_dropped_for_an_unread_socket() {
        let unread = UdpSocket::bind("127.0.0.1:0").unwrap();
        let drops = ReceiveDrops::of(&unread);
        assert_eq!(drops.count(), Some(0));
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let datagram = [0x5a; 1200];
        for _ in 0..4000 {
            sender
                .send_to(&datagram, unread.local_addr().unwrap())
                .unwrap();
        }
        let dropped = drops.count().expect("Linux reports the count");
        assert!(
            dropped > 0,
            "4,000 datagrams of 1,200 bytes fill the buffer"
        );
        assert!(dropped < 4000, "some were kept");
    }
}
