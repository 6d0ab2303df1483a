//! Packet capture with a raw packet socket (AF_PACKET) and a TPACKET_V3
//! receive ring shared with the kernel: the kernel writes packets into
//! blocks of the ring and hands a block over when it is full or a few
//! milliseconds old, so one wake-up serves thousands of packets. A
//! one-instruction BPF filter keeps only the first bytes of each packet
//! (the headers); the real length travels with it. All `unsafe` of the
//! capture lives in this file.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use thiserror::Error;

/// Bytes kept of each packet: Ethernet (14) + two VLAN tags (8) + an IPv6
/// header (40) fit with room to spare.
pub const SNAPLEN: u32 = 128;
/// Ring geometry: 8 blocks of 1 MiB, about 40 000 header-only packets.
const BLOCK_SIZE: u32 = 1 << 20;
const BLOCK_NR: u32 = 8;
const FRAME_SIZE: u32 = 2048;
/// A block that is not full is handed over after this many milliseconds.
pub const BLOCK_TIMEOUT_MS: u32 = 20;

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error(
        "capturing packets needs the CAP_NET_RAW capability (raw packet socket: {0}): run as root, \
         e.g. `sudo dscproute watch …`, or grant it with `setcap cap_net_raw+ep` on the binary"
    )]
    Permission(io::Error),
    #[error("no interface named {0:?}: see `ip link` for the interfaces of this host")]
    NoInterface(String),
    #[error(
        "interface {0:?} disappeared while it was watched (deleted, or re-created with a new \
         index): run `dscproute watch` again once it is back"
    )]
    InterfaceGone(String),
    #[error("packet capture: {what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
}

/// One captured packet, borrowed from the ring.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub ifindex: i32,
    /// PACKET_HOST, PACKET_OUTGOING, … (linux/if_packet.h).
    pub pkttype: u8,
    /// ARPHRD_* of the interface.
    pub hatype: u16,
    /// Ethertype as the kernel saw it (host order).
    pub protocol: u16,
    /// Length on the wire; `data` holds at most SNAPLEN bytes of it.
    pub wire_len: u32,
    pub data: &'a [u8],
    /// Kernel timestamp (CLOCK_REALTIME).
    pub sec: u32,
    pub nsec: u32,
}

pub const PACKET_HOST: u8 = libc::PACKET_HOST;
pub const PACKET_OUTGOING: u8 = libc::PACKET_OUTGOING;

/// The interface index of `name`.
pub fn ifindex(name: &str) -> Result<u32, CaptureError> {
    let c = CString::new(name).map_err(|_| CaptureError::NoInterface(name.into()))?;
    // SAFETY: a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(CaptureError::NoInterface(name.into())),
        i => Ok(i),
    }
}

/// A bound AF_PACKET socket with its mapped ring.
pub struct Capture {
    fd: OwnedFd,
    ring: NonNull<u8>,
    ring_len: usize,
    next_block: usize,
    kernel_drops: u64,
    /// The socket reported an error (the link went down or away) since the
    /// last `take_link_event`.
    link_event: bool,
}

// SAFETY: the ring mapping is owned by this value alone; nothing else
// aliases it in this process, so moving it to another thread is sound.
unsafe impl Send for Capture {}

fn io_err(what: &'static str) -> CaptureError {
    CaptureError::Io {
        what,
        source: io::Error::last_os_error(),
    }
}

fn setsockopt<T>(
    fd: i32,
    level: i32,
    name: i32,
    value: &T,
    what: &'static str,
) -> Result<(), CaptureError> {
    // SAFETY: `value` points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io_err(what)) }
}

impl Capture {
    /// Capture on one interface (by index), or on all when `None`.
    pub fn open(ifindex: Option<u32>) -> Result<Capture, CaptureError> {
        // Protocol 0: nothing is queued until bind() names ETH_P_ALL, so no
        // packet of another interface slips in before the bind.
        // SAFETY: plain socket(2) call.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => CaptureError::Permission(e),
                _ => CaptureError::Io {
                    what: "socket(AF_PACKET)",
                    source: e,
                },
            });
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            "PACKET_VERSION",
        )?;

        // `ret #SNAPLEN`: accept every packet, keep its first SNAPLEN bytes.
        let mut program = [libc::sock_filter {
            code: 0x06, // BPF_RET | BPF_K
            jt: 0,
            jf: 0,
            k: SNAPLEN,
        }];
        let fprog = libc::sock_fprog {
            len: 1,
            filter: program.as_mut_ptr(),
        };
        setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog,
            "SO_ATTACH_FILTER",
        )?;

        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: BLOCK_NR,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_NR,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "PACKET_RX_RING",
        )?;

        let ring_len = (BLOCK_SIZE * BLOCK_NR) as usize;
        // SAFETY: mapping the ring the kernel just allocated for this socket.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io_err("mmap of the capture ring"));
        }
        let ring = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io_err("mmap"))?;
        let capture = Capture {
            fd,
            ring,
            ring_len,
            next_block: 0,
            kernel_drops: 0,
            link_event: false,
        };

        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex.map_or(0, |i| i as i32);
        // SAFETY: a valid sockaddr_ll and its size.
        let rc = unsafe {
            libc::bind(
                raw,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(match (e.raw_os_error(), ifindex) {
                (Some(libc::ENODEV | libc::ENXIO), Some(i)) => {
                    CaptureError::NoInterface(format!("index {i}"))
                }
                _ => CaptureError::Io {
                    what: "bind",
                    source: e,
                },
            });
        }
        Ok(capture)
    }

    fn block(&self, i: usize) -> *mut u8 {
        // SAFETY: i < BLOCK_NR, so the offset stays inside the mapping.
        unsafe { self.ring.as_ptr().add(i * BLOCK_SIZE as usize) }
    }

    fn status(&self, block: *mut u8) -> &AtomicU32 {
        // block_status is the first field of hdr.bh1, at offset 8 (after
        // version and offset_to_priv), 4-byte aligned inside a page-aligned block.
        let off = std::mem::offset_of!(libc::tpacket_block_desc, hdr);
        // SAFETY: an aligned u32 inside the live mapping, shared with the
        // kernel, which is what atomics are for.
        unsafe { AtomicU32::from_ptr(block.add(off).cast::<u32>()) }
    }

    /// Hand every packet of the blocks that are ready to `f`; with none
    /// ready, wait up to `timeout` first. Returns the packets handled;
    /// `Ok(0)` also after a signal interrupted the wait.
    pub fn poll(
        &mut self,
        timeout: Duration,
        f: &mut dyn FnMut(&Packet),
    ) -> Result<usize, CaptureError> {
        let mut handled = self.drain(f);
        if handled > 0 {
            return Ok(handled);
        }
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(CaptureError::Io {
                what: "poll",
                source: e,
            });
        }
        if pfd.revents & libc::POLLERR != 0 {
            // ENETDOWN when the link goes down or is deleted. Reading it
            // clears it; otherwise every poll would return at once.
            self.clear_error();
            self.link_event = true;
        }
        handled += self.drain(f);
        Ok(handled)
    }

    /// Read (and so clear) the socket's pending error.
    fn clear_error(&self) {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid int buffer and its length.
        unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            );
        }
    }

    /// Did the link go down or away since the last call?
    pub fn take_link_event(&mut self) -> bool {
        std::mem::take(&mut self.link_event)
    }

    /// Process the blocks the kernel has handed over, in ring order.
    fn drain(&mut self, f: &mut dyn FnMut(&Packet)) -> usize {
        let mut n = 0;
        for _ in 0..BLOCK_NR {
            let block = self.block(self.next_block);
            let status = self.status(block);
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            n += self.walk_block(block, f);
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next_block = (self.next_block + 1) % BLOCK_NR as usize;
        }
        n
    }

    fn walk_block(&self, block: *mut u8, f: &mut dyn FnMut(&Packet)) -> usize {
        let bs = BLOCK_SIZE as usize;
        // SAFETY: the block is ours (TP_STATUS_USER) until we hand it back,
        // so the kernel does not write it meanwhile; it lies inside the mapping.
        let desc = unsafe { std::ptr::read(block.cast::<libc::tpacket_block_desc>()) };
        // SAFETY: bh1 is the only variant of the union (TPACKET_V3).
        let (num, first) = unsafe { (desc.hdr.bh1.num_pkts, desc.hdr.bh1.offset_to_first_pkt) };
        let hdr_len = std::mem::size_of::<libc::tpacket3_hdr>();
        let sll_at = hdr_len.next_multiple_of(libc::TPACKET_ALIGNMENT);
        let sll_len = std::mem::size_of::<libc::sockaddr_ll>();
        let mut off = first as usize;
        let mut n = 0;
        for _ in 0..num {
            // Never trust offsets further than the block reaches.
            if off + sll_at + sll_len > bs {
                break;
            }
            // SAFETY: bounds checked just above; read_unaligned needs no alignment.
            let (h, sll) = unsafe {
                let p = block.add(off);
                (
                    std::ptr::read_unaligned(p.cast::<libc::tpacket3_hdr>()),
                    std::ptr::read_unaligned(p.add(sll_at).cast::<libc::sockaddr_ll>()),
                )
            };
            let start = off + usize::from(h.tp_mac);
            let len = h.tp_snaplen as usize;
            if start + len > bs {
                break;
            }
            // SAFETY: inside the block (checked), which stays ours while `f` runs.
            let data = unsafe { std::slice::from_raw_parts(block.add(start), len) };
            f(&Packet {
                ifindex: sll.sll_ifindex,
                pkttype: sll.sll_pkttype,
                hatype: sll.sll_hatype,
                protocol: u16::from_be(sll.sll_protocol),
                wire_len: h.tp_len,
                data,
                sec: h.tp_sec,
                nsec: h.tp_nsec,
            });
            n += 1;
            if h.tp_next_offset == 0 {
                break;
            }
            off += h.tp_next_offset as usize;
        }
        n
    }

    /// Packets the kernel dropped since the socket was bound (the ring was
    /// full), summed over reads (the kernel resets its counter on each).
    pub fn kernel_drops(&mut self) -> u64 {
        // SAFETY: plain old data; zero is valid.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: a valid buffer and its length.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            self.kernel_drops += u64::from(st.tp_drops);
        }
        self.kernel_drops
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in open(); no borrow of
        // it outlives `self` (packets are lent only during poll()).
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), self.ring_len);
        }
    }
}
