//! A byte queue that consumes from the front without moving the rest each
//! time (a `Vec::drain` per write would copy the whole queue).

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
