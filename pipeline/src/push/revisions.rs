//! [`RevisionBudget`]: the revisions a marketplace allows per listing per calendar day, spent
//! and held back.
//!
//! eBay revises a listing at most 250 times a calendar day ("Each listing can be revised up to
//! 250 times in one calendar day. If this revision threshold is reached, the seller will be
//! blocked from revising the item until the next calendar day", `bulkUpdatePriceQuantity` in
//! the Sell Inventory v1.18.2 OpenAPI). Past that, eBay refuses the update, which would be
//! dead-lettered and the listing left at an old quantity for the rest of the day.
//!
//! What shelfsync does instead: every update eBay accepts spends one revision of its SKU's
//! budget for the day. An update of a SKU whose budget is spent is **held, never
//! dead-lettered**: it waits in the channel's queue until the day rolls over, coalescing with
//! the SKU's later changes as any waiting update does, so that the first revision of the next
//! day carries the newest quantity. While it waits, the partition's committed offset stays
//! below it (a restart reads it again; the write is absolute, so that is safe).
//!
//! The day: eBay does not name the time zone of its calendar day; eBay's official time is US
//! Pacific. The budget counts days of UTC−8 (Pacific Standard Time) and releases held updates
//! at 08:00 UTC, which is after the rollover of the Pacific day in both standard and daylight
//! time, so a held update never lands in the day whose budget it would exceed. During daylight
//! time the hour from 07:00 to 08:00 UTC belongs to eBay's new day but is counted in the old
//! one here: revisions sent then can make eBay count up to that hour's revisions more than 250
//! in its new day (a refusal then is dead-lettered as any other).
//!
//! Counts are kept for the SKUs revised last (a bounded [`RecentMap`]); a forgotten SKU starts
//! from 0 again (it may then meet eBay's own refusal).

use std::time::Duration;

use super::recent::RecentMap;

/// A daily revision limit a marketplace publishes for each listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionLimit {
    /// Revisions per listing per calendar day.
    pub per_day: u32,
    /// Offset of the marketplace's calendar day from UTC, seconds (UTC−8: `-28_800`).
    pub day_offset_secs: i64,
    /// Where the figure is published.
    pub source: &'static str,
}

const DAY_SECS: i64 = 86_400;

/// Revisions spent per SKU in the current day, and the SKUs held until the next one.
#[derive(Debug)]
pub struct RevisionBudget {
    limit: RevisionLimit,
    /// The day counted, in days since the epoch of the marketplace's calendar.
    day: i64,
    spent: RecentMap<String, u32>,
    held: RecentMap<String, ()>,
    spent_today: u64,
    capacity: usize,
}

impl RevisionBudget {
    /// A budget of `limit`, remembering at most `capacity` SKUs.
    pub fn new(limit: RevisionLimit, capacity: usize) -> Self {
        Self {
            limit,
            day: i64::MIN,
            spent: RecentMap::new(capacity),
            held: RecentMap::new(capacity),
            spent_today: 0,
            capacity,
        }
    }

    fn day_of(&self, now_ms: i64) -> i64 {
        (now_ms.div_euclid(1000) + self.limit.day_offset_secs).div_euclid(DAY_SECS)
    }

    /// Starts a new day when `now_ms` is in one: every budget is whole again.
    fn roll(&mut self, now_ms: i64) {
        let day = self.day_of(now_ms);
        if day != self.day {
            self.day = day;
            self.spent = RecentMap::new(self.capacity);
            self.held = RecentMap::new(self.capacity);
            self.spent_today = 0;
        }
    }

    /// How long from `now_ms` until the next day starts.
    pub fn until_next_day(&self, now_ms: i64) -> Duration {
        let local_secs = now_ms.div_euclid(1000) + self.limit.day_offset_secs;
        let next_ms =
            ((local_secs.div_euclid(DAY_SECS) + 1) * DAY_SECS - self.limit.day_offset_secs) * 1000;
        Duration::from_millis(u64::try_from(next_ms - now_ms).unwrap_or(0).max(1))
    }

    /// Whether `sku` may be revised at `now_ms`. When its budget is spent, the SKU counts as
    /// held and the answer is the wait until the next day.
    ///
    /// # Errors
    /// The wait until the day rolls over, when the SKU's budget for today is spent.
    pub fn check(&mut self, sku: &str, now_ms: i64) -> Result<(), Duration> {
        self.roll(now_ms);
        if self
            .spent
            .get(sku)
            .is_some_and(|n| *n >= self.limit.per_day)
        {
            self.held.insert(sku.to_string(), ());
            return Err(self.until_next_day(now_ms));
        }
        Ok(())
    }

    /// Counts one revision of `sku` (an update the marketplace accepted) at `now_ms`.
    pub fn spend(&mut self, sku: &str, now_ms: i64) {
        self.roll(now_ms);
        *self.spent.entry_or_default(sku.to_string()) += 1;
        self.held.remove(sku);
        self.spent_today += 1;
    }

    /// Revisions counted today.
    pub fn spent_today(&self) -> u64 {
        self.spent_today
    }

    /// SKUs held until the next day.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The limit.
    pub fn limit(&self) -> RevisionLimit {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::marketplaces::ebay::REVISIONS;

    /// 2026-03-02 12:00:00 UTC, in ms.
    const NOON_UTC: i64 = 1_772_452_800_000;

    #[test]
    fn the_budget_is_spent_then_held_until_the_pacific_day_rolls_over() {
        let mut budget = RevisionBudget::new(REVISIONS, 1000);
        let per_day = REVISIONS.per_day;
        for _ in 0..per_day {
            assert_eq!(budget.check("A", NOON_UTC), Ok(()));
            budget.spend("A", NOON_UTC);
        }
        assert_eq!(budget.spent_today(), u64::from(per_day));
        // The 251st revision waits: noon UTC is 04:00 in UTC−8, so 20 h to its midnight.
        let wait = budget.check("A", NOON_UTC).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20 * 3600));
        assert_eq!(budget.held(), 1);
        // Another SKU is not held back by A's budget.
        assert_eq!(budget.check("B", NOON_UTC), Ok(()));
        // One ms before 08:00 UTC next day: still the same day; at 08:00 UTC: a new budget.
        let rollover = NOON_UTC + 20 * 3600 * 1000;
        assert!(budget.check("A", rollover - 1).is_err());
        assert_eq!(budget.check("A", rollover), Ok(()));
        assert_eq!(budget.held(), 0);
        assert_eq!(budget.spent_today(), 0);
    }

    #[test]
    fn the_wait_is_never_zero_and_days_before_the_epoch_count_too() {
        let budget = RevisionBudget::new(REVISIONS, 10);
        // At 08:00:00.000 UTC exactly a new day started: the next is a whole day away.
        let eight = NOON_UTC - 4 * 3600 * 1000;
        assert_eq!(budget.until_next_day(eight), Duration::from_secs(86_400));
        assert_eq!(budget.until_next_day(eight - 1), Duration::from_millis(1));
        assert_eq!(budget.day_of(-1), budget.day_of(0));
    }
}
