//! A lane's handler slots: at most `concurrency` handlers run at once, and
//! each running one holds a slot number no other running one holds.
//!
//! The number lets a Postgres-store handler keep hot rows apart: a projection
//! that adds to a counter row per org keys it by (org, slot), so transactions
//! running at once never update the same row. Otherwise each waits for the
//! row lock of the one before it, and a transaction waiting with rows already
//! written holds its transaction id open — which holds back the commit horizon
//! the relay publishes below ([`xentri_core::store`]), delaying every event on
//! the server, not just this group's.

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

/// The slots of one lane.
pub struct Slots {
    /// One permit per free slot.
    permits: Semaphore,
    /// The free slot numbers; a permit guarantees one is here.
    free: Mutex<Vec<u16>>,
}

/// A slot held until dropped.
pub struct Slot<'s> {
    number: u16,
    slots: &'s Slots,
    _permit: Option<SemaphorePermit<'s>>,
}

impl Slots {
    /// Slots `0..count` (at least one; at most `u16::MAX`).
    pub fn new(count: usize) -> Self {
        let count = count.clamp(1, usize::from(u16::MAX));
        let free = (0..count).filter_map(|n| u16::try_from(n).ok()).rev().collect();
        Self { permits: Semaphore::new(count), free: Mutex::new(free) }
    }

    /// Waits for a free slot. The lowest free number is taken, so a lane
    /// under light load keeps using the same few.
    pub async fn acquire(&self) -> Slot<'_> {
        // Never closed, so never `None`.
        let permit = self.permits.acquire().await.ok();
        let number = self.free.lock().map(|mut free| free.pop()).unwrap_or_else(|poisoned| poisoned.into_inner().pop());
        Slot { number: number.unwrap_or(0), slots: self, _permit: permit }
    }
}

impl Slot<'_> {
    /// Its number, below the lane's concurrency.
    pub fn number(&self) -> u16 {
        self.number
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut free = self.slots.free.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Kept sorted high to low, so `pop` takes the lowest.
        let at = free.partition_point(|&n| n > self.number);
        free.insert(at, self.number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn running_holders_never_share_a_number() {
        let slots = Slots::new(3);
        let a = slots.acquire().await;
        let b = slots.acquire().await;
        let c = slots.acquire().await;
        assert_eq!((a.number(), b.number(), c.number()), (0, 1, 2));
        assert_eq!(slots.permits.available_permits(), 0, "all three held");
        drop(b);
        let d = slots.acquire().await;
        assert_eq!(d.number(), 1, "the freed number is taken again");
        drop((a, c, d));
        assert_eq!(slots.acquire().await.number(), 0, "the lowest free number first");
    }
}
