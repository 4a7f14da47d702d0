//! The sender side of the push sink: one task per channel takes batches from its queue, sends
//! them to the marketplace and completes them (acknowledged, retried or dead-lettered).

use super::*;

impl HttpPushSink {
    /// Asks every sender to stop taking new work.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        for c in &self.channels {
            c.notify.notify_one();
        }
    }

    /// Runs every channel's sender and the gauges until [`HttpPushSink::stop`], then waits
    /// for the requests in flight (at most `drain` long).
    pub async fn run(self: Arc<Self>, drain: Duration) {
        let mut senders = Vec::new();
        for ch in 0..self.channels.len() {
            senders.push(tokio::spawn(Arc::clone(&self).run_sender(ch)));
        }
        let gauges = tokio::spawn(Arc::clone(&self).run_gauges());
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
        let all = async {
            for s in senders {
                let _ = s.await;
            }
        };
        if tokio::time::timeout(drain, all).await.is_err() {
            warn!(
                drain_s = drain.as_secs(),
                "requests still in flight at shutdown; their updates are sent again by the next owner"
            );
        }
        gauges.abort();
        self.update_gauges();
    }

    async fn run_sender(self: Arc<Self>, ch: usize) {
        let Some(rt) = self.channels.get(ch) else {
            return;
        };
        let mut stop = self.stop.subscribe();
        loop {
            if *stop.borrow() {
                break;
            }
            let permit = tokio::select! {
                p = Arc::clone(&rt.permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = stop.wait_for(|s| *s) => break,
            };
            // Wait for something to send.
            loop {
                if *stop.borrow() {
                    break;
                }
                let ready = {
                    let state = self.state();
                    state.channels.get(ch).and_then(|c| {
                        c.queue
                            .first_ready(Instant::now(), |sku| c.in_flight.contains_key(sku))
                    })
                };
                if ready.is_some() {
                    break;
                }
                tokio::select! {
                    () = rt.notify.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
            if *stop.borrow() {
                break;
            }
            // A token first, then pick: what goes out is as fresh as it can be, and a
            // stock-out that arrives meanwhile is picked first.
            tokio::select! {
                () = rt.api.limiter.acquire() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let batch = self.take_batch(ch);
            if batch.is_empty() {
                rt.api.limiter.refund();
                continue;
            }
            let sink = Arc::clone(&self);
            tokio::spawn(async move {
                let _permit = permit;
                let Some(rt) = sink.channels.get(ch) else {
                    return;
                };
                let calls = Calls::new(&rt.api, true);
                let refs: Vec<&Update> = batch.iter().collect();
                let delivery =
                    delivery::deliver(&calls, rt.marketplace.as_ref(), &rt.config, &refs).await;
                sink.complete(ch, &batch, delivery);
                rt.notify.notify_one();
            });
        }
        // Wait for this channel's requests in flight.
        let max = u32::try_from(rt.config.max_in_flight).unwrap_or(u32::MAX);
        let _ = rt.permits.acquire_many(max).await;
        debug!(channel = %rt.config.name, "sender stopped");
    }

    /// Takes the next batch of a channel and marks it in flight.
    pub(super) fn take_batch(&self, ch: usize) -> Vec<Update> {
        let Some(rt) = self.channels.get(ch) else {
            return Vec::new();
        };
        let mut state = self.state();
        let Some(channel) = state.channels.get_mut(ch) else {
            return Vec::new();
        };
        let ChannelState {
            queue,
            in_flight,
            revisions,
            ..
        } = channel;
        let now = Instant::now();
        let Some(first_is_stock_out) = queue.first_ready(now, |sku| in_flight.contains_key(sku))
        else {
            return Vec::new();
        };
        let feed_ready = rt
            .marketplace
            .feed()
            .is_none_or(|feed| rt.api.ready(feed.submit_operations()));
        let n = rt.marketplace.batch_for(
            first_is_stock_out,
            queue.len(),
            rt.config.batch_size,
            feed_ready,
        );
        let taken = queue.take(n, now, |sku| in_flight.contains_key(sku));
        let mut out = Vec::with_capacity(taken.len());
        let now_ms = crate::clock::now_ms();
        let mut held = 0u64;
        for mut entry in taken {
            if let Some(Err(wait)) = revisions
                .as_mut()
                .map(|b| b.check(&entry.update.sku, now_ms))
            {
                // The SKU's revisions for the day are spent: hold its newest quantity until
                // the day rolls over (never dead-letter it); newer changes coalesce into it.
                entry.not_before = Some(now + wait);
                debug!(channel = %rt.config.name, sku = %entry.update.sku, hold_s = wait.as_secs(), "daily revision budget spent; holding the update until the next day");
                held += 1;
                queue.requeue(entry);
                continue;
            }
            out.push(entry.update.clone());
            in_flight.insert(entry.update.sku.clone(), entry);
        }
        if held > 0 {
            metrics::counter!(m::PUSH_REVISION_BUDGET_EXHAUSTED, "channel" => rt.config.name.clone())
                .increment(held);
        }
        out
    }

    /// Applies a delivery's results: acknowledges, retries, dead-letters.
    pub(super) fn complete(&self, ch: usize, updates: &[Update], delivery: Delivery) {
        let Some(rt) = self.channels.get(ch) else {
            return;
        };
        let name = rt.config.name.as_str();
        let mut dead = Vec::new();
        let mut sent = 0u64;
        let mut coalesced = 0u64;
        {
            let mut guard = self.state();
            let state = &mut *guard;
            let mut acks = Vec::new();
            let now = Instant::now();
            let mut requeue = Vec::new();
            {
                let Some(channel) = state.channels.get_mut(ch) else {
                    return;
                };
                for (update, result) in updates.iter().zip(delivery.results) {
                    let Some(mut entry) = channel.in_flight.remove(&update.sku) else {
                        continue;
                    };
                    match result {
                        ItemResult::Accepted => {
                            if let Some(budget) = channel.revisions.as_mut() {
                                budget.spend(&update.sku, crate::clock::now_ms());
                            }
                            let d = channel.delivered.entry_or_default(update.sku.clone());
                            *d = (*d).max(update.version);
                            sent += 1;
                            acks.append(&mut entry.covers);
                        }
                        ItemResult::Rejected {
                            status,
                            reason,
                            body,
                        } => {
                            warn!(channel = name, sku = %update.sku, version = update.version, status, reason = %reason, "marketplace refused the update; dead-lettered");
                            dead.push(DeadLetter::update(
                                ch,
                                name,
                                entry,
                                "marketplace_rejected",
                                reason,
                                Some(status),
                                body,
                            ));
                        }
                        ItemResult::Retry { class, reason } => {
                            metrics::counter!(m::PUSH_RETRIES, "channel" => name.to_string(), "reason" => class).increment(1);
                            entry.attempts += 1;
                            if entry.attempts > rt.config.max_retries {
                                warn!(channel = name, sku = %update.sku, version = update.version, attempts = entry.attempts, reason = %reason, "update failed on every try; dead-lettered");
                                dead.push(DeadLetter::update(
                                    ch,
                                    name,
                                    entry,
                                    "retries_exhausted",
                                    reason,
                                    None,
                                    String::new(),
                                ));
                            } else {
                                let jitter =
                                    self.jitter.lock().map(|mut j| j.next_f64()).unwrap_or(0.5);
                                let delay =
                                    backoff(entry.attempts, BACKOFF_BASE, BACKOFF_CAP, jitter);
                                debug!(channel = name, sku = %update.sku, attempts = entry.attempts, retry_in_ms = delay.as_millis() as u64, reason = %reason, "update will be retried");
                                entry.not_before = Some(now + delay);
                                requeue.push(entry);
                            }
                        }
                        ItemResult::Again { class } => {
                            metrics::counter!(m::PUSH_RETRIES, "channel" => name.to_string(), "reason" => class).increment(1);
                            entry.not_before = None;
                            requeue.push(entry);
                        }
                    }
                }
            }
            for mut entry in requeue {
                entry.covers.retain(|c| state.keeps(c));
                if entry.covers.is_empty() {
                    continue;
                }
                if let Some(channel) = state.channels.get_mut(ch) {
                    if channel.queue.requeue(entry) == Offered::Superseded {
                        coalesced += 1;
                    }
                }
            }
            state.ack(&acks);
        }
        if delivery.throttled {
            let jitter = self.jitter.lock().map(|mut j| j.next_f64()).unwrap_or(0.5);
            let pause = rt.api.limiter.throttled(None, jitter);
            info!(
                channel = name,
                pause_ms = pause.as_millis() as u64,
                "marketplace throttled the channel; pausing it"
            );
        }
        if sent > 0 {
            metrics::counter!(m::PUSH_SENT, "channel" => name.to_string()).increment(sent);
        }
        if coalesced > 0 {
            self.count_coalesced(ch, coalesced);
        }
        for letter in dead {
            if let Err(e) = self.dead_letter(letter) {
                self.set_fatal(e);
            }
        }
    }

    /// Produces a dead letter and, once it is enqueued, acknowledges what it covers (the commit
    /// flushes the producer before committing, so it is on the broker by then).
    pub(super) fn dead_letter(&self, letter: DeadLetter) -> Result<()> {
        let channel = self
            .channels
            .get(letter.channel)
            .map(|c| c.config.name.clone());
        let headers = letter.headers(&self.source_topic, channel.as_deref());
        self.producer.send(ProduceRecord {
            topic: &self.dlq_topic,
            partition: None,
            key: Some(&letter.key),
            value: Some(&letter.value),
            timestamp: None,
            headers,
        })?;
        metrics::counter!(m::DLQ, "stage" => STAGE, "kind" => letter.kind).increment(1);
        if let Some(name) = channel {
            metrics::counter!(m::PUSH_FAILED, "channel" => name, "kind" => letter.kind)
                .increment(1);
        }
        self.state().ack(&letter.covers);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Gauges

    async fn run_gauges(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            self.update_gauges();
        }
    }
}
