//! A byte queue that consumes from the front without moving the rest each
//! time (a `Vec::drain` per write would copy the whole queue).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Most descriptors one client may hand over (its stdin, stdout, stderr).
pub const MAX_FDS: usize = 3;

#[derive(Default)]
pub struct Queue {
    buf: Vec<u8>,
    start: usize,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Room to append into: compacts first when half the buffer is spent.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        &mut self.buf
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf_mut().extend_from_slice(data);
    }

    /// Reads once from a unix socket straight into the queue, at most `max`
    /// bytes, taking the descriptors that came with them (`SCM_RIGHTS`, at
    /// most `MAX_FDS`) into `fds`.
    pub fn recv_from(&mut self, sock: BorrowedFd<'_>, max: usize, fds: &mut Vec<OwnedFd>) -> std::io::Result<usize> {
        let buf = self.buf_mut();
        buf.reserve(max);
        let spare = buf.spare_capacity_mut();
        let mut iov = libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: spare.len().min(max) };
        let mut control = [0u64; 8];
        // SAFETY: an all-zero msghdr is valid; the fields set point at live
        // buffers of the lengths given.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: recvmsg writes at most iov_len bytes into the spare
        // capacity and at most msg_controllen bytes of control data.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the first n bytes of the spare capacity were written.
        unsafe { buf.set_len(buf.len() + n as usize) };
        // SAFETY: the CMSG macros walk the control data recvmsg filled in.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                    let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                    // Each descriptor is owned from here on: extra ones close.
                    for i in 0..count {
                        let fd = OwnedFd::from_raw_fd(data.add(i).read_unaligned());
                        if fds.len() < MAX_FDS {
                            fds.push(fd);
                        }
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok(n as usize)
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumes_from_the_front_and_keeps_order() {
        let mut q = Queue::default();
        q.push(b"hello ");
        q.consume(2);
        q.push(b"world");
        assert_eq!(q.as_slice(), b"llo world");
        q.consume(100);
        assert!(q.is_empty());
        q.push(b"x");
        assert_eq!(q.as_slice(), b"x");
    }
}
