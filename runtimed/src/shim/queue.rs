//! A byte queue that consumes from the front without moving the rest each
//! time (a `Vec::drain` per write would copy the whole queue).

use std::os::fd::{AsRawFd, BorrowedFd};

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

    /// Reads once from `fd` straight into the queue, at most `max` bytes.
    pub fn read_from(&mut self, fd: BorrowedFd<'_>, max: usize) -> std::io::Result<usize> {
        let buf = self.buf_mut();
        buf.reserve(max);
        let spare = buf.spare_capacity_mut();
        // SAFETY: read(2) writes at most `spare.len()` bytes into the
        // vector's unused capacity; only those it wrote are then counted.
        let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len().min(max)) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the first n bytes of the spare capacity were written.
        unsafe { buf.set_len(buf.len() + n as usize) };
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
