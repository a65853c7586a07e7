//! A hook's waiting events: bounded, oldest dropped first, so a receiver that is down for
//! hours costs a fixed amount of memory and, when it returns, gets the latest events. Sans-IO.

use std::collections::VecDeque;

/// Events waiting for one receiver, in order.
#[derive(Debug)]
pub struct Queue<T> {
    items: VecDeque<T>,
    bound: usize,
}

impl<T> Queue<T> {
    pub fn new(bound: usize) -> Queue<T> {
        Queue { items: VecDeque::new(), bound: bound.max(1) }
    }

    /// Adds `item` at the back; true when the oldest had to go to make room.
    pub fn push(&mut self, item: T) -> bool {
        let full = self.items.len() >= self.bound;
        if full {
            self.items.pop_front();
        }
        self.items.push_back(item);
        full
    }

    /// The oldest waiting item.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_holds_and_the_oldest_go_first_in_order() {
        let mut q = Queue::new(3);
        let dropped: Vec<bool> = (1..=5).map(|i| q.push(i)).collect();
        assert_eq!(dropped, [false, false, false, true, true]);
        assert_eq!(q.len(), 3);
        assert_eq!((q.pop(), q.pop(), q.pop(), q.pop()), (Some(3), Some(4), Some(5), None));
        assert!(q.is_empty());
    }
}
