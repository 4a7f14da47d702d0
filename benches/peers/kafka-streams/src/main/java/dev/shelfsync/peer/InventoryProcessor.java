package dev.shelfsync.peer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The inventory stage as a Kafka Streams processor: the operators crate's
 * {@code reserve_inventory} (+ its lifecycle) and {@code allocate_channels}, rule for rule.
 *
 * <p>One command is one step, as in the operator: holds whose TTL is due at stream time are
 * released, then the command is applied (ERP stock change, product master, reserve, release),
 * stock that rose fills the SKU's backorders oldest order first, and every SKU the step touched
 * has its channels re-evaluated once, an availability event going out only for a number that
 * changed (the first evaluation publishes version 1, even 0). Line commands answer with a line
 * result. Stream time is the largest record timestamp seen by the task.
 *
 * <p>State: {@code inventory} (SKU → {@link SkuRecord}), {@code inventory-holds} (SKU, order
 * key, line id → {@link SkuRecord.Hold}) and {@code inventory-expiry} (deadline ++ SKU ++ order
 * key ++ line id → nothing), persistent RocksDB stores with a changelog and the record cache.
 * The earliest deadline is kept in memory (re-read at init) so that the expiry index is only
 * scanned when something may be due.
 */
final class InventoryProcessor implements Processor<byte[], byte[], byte[], byte[]> {
    /** Commands taken, over every task of the process (the bench samples it). */
    static final AtomicLong PROCESSED = new AtomicLong();
    /** Commands refused (undecodable or invalid; the pipeline dead-letters them). */
    static final AtomicLong REFUSED = new AtomicLong();

    static final String STORE = "inventory";
    static final String HOLD_STORE = "inventory-holds";
    static final String EXPIRY_STORE = "inventory-expiry";
    static final String AVAILABILITY_SINK = "availability";
    static final String LINE_RESULT_SINK = "line-results";

    private static final byte[] EMPTY = new byte[0];
    private static final Bytes LOWEST = Bytes.wrap(new byte[0]);

    private final PeerConfig config;
    private final Avro avro = new Avro();
    private ProcessorContext<byte[], byte[]> context;
    private KeyValueStore<String, SkuRecord> store;
    private KeyValueStore<Bytes, SkuRecord.Hold> holds;
    private KeyValueStore<Bytes, byte[]> expiry;
    private long streamTime = Long.MIN_VALUE;
    private long nextDue = Long.MAX_VALUE;

    InventoryProcessor(PeerConfig config) {
        this.config = config;
    }

    @Override
    public void init(ProcessorContext<byte[], byte[]> context) {
        this.context = context;
        this.store = context.getStateStore(STORE);
        this.holds = context.getStateStore(HOLD_STORE);
        this.expiry = context.getStateStore(EXPIRY_STORE);
        this.nextDue = earliestDeadline();
    }

    /** What one step touched: SKU records read once and written back once, in SKU order. */
    private final class Step {
        final TreeMap<String, SkuRecord> records = new TreeMap<>();
        final TreeSet<String> rose = new TreeSet<>();
        final Record<byte[], byte[]> input;

        Step(Record<byte[], byte[]> input) {
            this.input = input;
        }

        SkuRecord get(String sku) {
            SkuRecord r = records.get(sku);
            if (r == null) {
                r = store.get(sku);
                if (r == null) {
                    r = new SkuRecord();
                }
                records.put(sku, r);
            }
            return r;
        }
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
        PROCESSED.incrementAndGet();
        long now = Math.max(streamTime, record.timestamp());
        streamTime = now;
        GenericRecord cmd;
        try {
            cmd = avro.decodeCommand(record.value());
        } catch (IOException | RuntimeException e) {
            REFUSED.incrementAndGet();
            return;
        }
        Step t = new Step(record);
        expire(t, now);
        String kind = cmd.get("kind").toString();
        String sku = cmd.get("sku").toString();
        GenericRecord line = (GenericRecord) cmd.get("line");
        boolean ok;
        try {
            check(cmd, kind, sku);
            switch (kind) {
                case "INVENTORY" -> applyInventory(t, now, (GenericRecord) cmd.get("inventory"));
                case "PRODUCT" -> applyProduct(t, (GenericRecord) cmd.get("product"));
                case "RESERVE" -> reserve(t, now, line);
                case "RELEASE" -> release(t, line);
                default -> { }
            }
            ok = true;
        } catch (Refused e) {
            REFUSED.incrementAndGet();
            ok = false;
        }
        boolean holdsNothing = line != null && !(Boolean) line.get("holds_stock");
        if (ok && !holdsNothing) {
            t.get(sku);
        }
        if (ok) {
            for (String s : new ArrayList<>(t.rose)) {
                fillBackorders(t, s);
            }
        }
        List<KeyValue<String, SkuRecord>> writes = new ArrayList<>(t.records.size());
        for (var e : t.records.entrySet()) {
            allocate(t, e.getKey(), e.getValue(), now);
            writes.add(KeyValue.pair(e.getKey(), e.getValue()));
        }
        if (writes.size() == 1) {
            store.put(writes.get(0).key, writes.get(0).value);
        } else {
            store.putAll(writes);
        }
    }

    /** An invalid command: refused (the pipeline sends it to the DLQ with the reason). */
    private static final class Refused extends Exception {
        Refused(String reason) {
            super(reason, null, false, false);
        }
    }

    private static void check(GenericRecord cmd, String kind, String sku) throws Refused {
        Object payload = switch (kind) {
            case "INVENTORY" -> cmd.get("inventory");
            case "PRODUCT" -> cmd.get("product");
            default -> cmd.get("line");
        };
        if (payload == null) {
            throw new Refused(kind + " command without its payload");
        }
        String payloadSku = ((GenericRecord) payload).get("sku").toString();
        if (!payloadSku.equals(sku)) {
            throw new Refused("record SKU differs from payload SKU");
        }
        if (payloadSku.isEmpty()) {
            throw new Refused("sku must not be empty");
        }
    }

    // ---- expiry ----

    /** The key of a hold's deadline: the order-preserving deadline, then the hold's key. */
    private static Bytes expiryKey(long at, String sku, String orderKey, String lineId) {
        byte[] hold = holdKey(sku, orderKey, lineId).get();
        return Bytes.wrap(ByteBuffer.allocate(8 + hold.length).putLong(at ^ Long.MIN_VALUE).put(hold).array());
    }

    /** The key of a hold: SKU, order key and line id, each length-prefixed. */
    private static Bytes holdKey(String sku, String orderKey, String lineId) {
        byte[][] parts = {sku.getBytes(StandardCharsets.UTF_8),
                orderKey.getBytes(StandardCharsets.UTF_8), lineId.getBytes(StandardCharsets.UTF_8)};
        int n = 0;
        for (byte[] p : parts) {
            n += 4 + p.length;
        }
        ByteBuffer b = ByteBuffer.allocate(n);
        for (byte[] p : parts) {
            b.putInt(p.length).put(p);
        }
        return Bytes.wrap(b.array());
    }

    private static Bytes deadlineKey(long at) {
        return Bytes.wrap(ByteBuffer.allocate(8).putLong(at ^ Long.MIN_VALUE).array());
    }

    private long earliestDeadline() {
        try (KeyValueIterator<Bytes, byte[]> it = expiry.all()) {
            return it.hasNext() ? ByteBuffer.wrap(it.next().key.get()).getLong() ^ Long.MIN_VALUE
                    : Long.MAX_VALUE;
        }
    }

    private void setExpiry(String sku, SkuRecord.Hold hold, long at) {
        if (hold.expiresAt != Long.MIN_VALUE) {
            expiry.delete(expiryKey(hold.expiresAt, sku, hold.orderKey, hold.lineId));
        }
        if (at != Long.MIN_VALUE) {
            expiry.put(expiryKey(at, sku, hold.orderKey, hold.lineId), EMPTY);
            nextDue = Math.min(nextDue, at);
        }
        hold.expiresAt = at;
    }

    private void expire(Step t, long now) {
        if (now < nextDue) {
            return;
        }
        List<Bytes> due = new ArrayList<>();
        Bytes to = now == Long.MAX_VALUE ? null : deadlineKey(now + 1);
        try (KeyValueIterator<Bytes, byte[]> it =
                     to == null ? expiry.all() : expiry.range(LOWEST, to)) {
            while (it.hasNext()) {
                Bytes k = it.next().key;
                if (to != null && k.compareTo(to) >= 0) {
                    break;
                }
                due.add(k);
            }
        }
        for (Bytes k : due) {
            expiry.delete(k);
            ByteBuffer b = ByteBuffer.wrap(k.get());
            long at = b.getLong() ^ Long.MIN_VALUE;
            String sku = str(b);
            String orderKey = str(b);
            String lineId = str(b);
            Bytes key = holdKey(sku, orderKey, lineId);
            SkuRecord.Hold hold = holds.get(key);
            if (hold == null || hold.expiresAt != at) {
                continue;
            }
            holds.delete(key);
            if (hold.state == SkuRecord.HELD) {
                SkuRecord rec = t.get(sku);
                rec.reserved -= hold.reserved;
                rec.backordered -= hold.backordered;
                if (hold.backordered > 0) {
                    unbackorder(rec, orderKey, lineId);
                }
            }
        }
        nextDue = earliestDeadline();
    }

    private static String str(ByteBuffer b) {
        byte[] s = new byte[b.getInt()];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    // ---- ERP ----

    private void applyInventory(Step t, long now, GenericRecord change) throws Refused {
        String sku = change.get("sku").toString();
        String location = change.get("location").toString();
        if (!config.locations.isEmpty() && !config.locations.contains(location)) {
            throw new Refused("unknown_location " + location);
        }
        SkuRecord rec = t.get(sku);
        long before = rec.totalOnHand();
        int lo = 0;
        int hi = rec.positions.size();
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (rec.positions.get(mid).location.compareTo(location) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        SkuRecord.Position pos;
        if (lo < rec.positions.size() && rec.positions.get(lo).location.equals(location)) {
            pos = rec.positions.get(lo);
        } else {
            pos = new SkuRecord.Position();
            pos.location = location;
            pos.erpSequence = Long.MIN_VALUE;
            rec.positions.add(lo, pos);
        }
        long seq = (Long) change.get("erp_sequence");
        if (seq <= pos.erpSequence) {
            return;
        }
        pos.erpSequence = seq;
        long quantity = (Long) change.get("quantity");
        if ("SNAPSHOT".equals(change.get("kind").toString())) {
            pos.onHand = quantity;
        } else {
            pos.onHand = saturatingAdd(pos.onHand, quantity);
        }
        if (rec.totalOnHand() > before) {
            t.rose.add(sku);
        }
        Object reason = change.get("reason");
        Object orderKeyField = change.get("order_key");
        Object lineIdField = change.get("line_id");
        if (reason == null || !"SHIPMENT".equals(reason.toString()) || orderKeyField == null
                || lineIdField == null) {
            return;
        }
        String orderKey = orderKeyField.toString();
        String lineId = lineIdField.toString();
        long shipped = Math.max(0, quantity == Long.MIN_VALUE ? Long.MAX_VALUE : -quantity);
        Bytes key = holdKey(sku, orderKey, lineId);
        SkuRecord.Hold hold = holds.get(key);
        if (hold == null) {
            // A shipment before the line's reservation: the line, when it comes, holds nothing.
            hold = new SkuRecord.Hold();
            hold.orderKey = orderKey;
            hold.lineId = lineId;
            hold.quantity = shipped;
            hold.hard = true;
            hold.state = SkuRecord.HELD;
            int colon = orderKey.indexOf(':');
            hold.channel = colon < 0 ? "" : orderKey.substring(0, colon);
            hold.heldAt = now;
        }
        if (hold.state != SkuRecord.HELD) {
            return;
        }
        long consume = Math.min(hold.reserved, shipped);
        hold.reserved -= consume;
        rec.reserved -= consume;
        if (hold.reserved == 0) {
            rec.backordered -= hold.backordered;
            if (hold.backordered > 0) {
                unbackorder(rec, orderKey, lineId);
            }
            hold.backordered = 0;
            hold.state = SkuRecord.SHIPPED;
            setExpiry(sku, hold, saturatingAdd(now, config.shippedLineRetentionMs));
        }
        holds.put(key, hold);
    }

    private static long saturatingAdd(long a, long b) {
        long r = a + b;
        if (((a ^ r) & (b ^ r)) < 0) {
            return a < 0 ? Long.MIN_VALUE : Long.MAX_VALUE;
        }
        return r;
    }

    private static long percent(String field, Object decimal, Object whole) throws Refused {
        if (decimal != null) {
            String text = decimal.toString();
            if (!text.matches("[0-9]{1,3}(\\.[0-9]{1,2})?")) {
                throw new Refused(field + " is not a decimal with at most two places");
            }
            int dot = text.indexOf('.');
            long hundredths = dot < 0 ? Long.parseLong(text) * 100
                    : Long.parseLong(text.substring(0, dot)) * 100
                    + Long.parseLong((text.substring(dot + 1) + "0").substring(0, 2));
            if (hundredths > 10_000) {
                throw new Refused(field + " is above 100");
            }
            return hundredths;
        }
        return whole == null ? Long.MIN_VALUE : (Long) whole * 100;
    }

    private void applyProduct(Step t, GenericRecord change) throws Refused {
        SkuRecord rec = t.get(change.get("sku").toString());
        long seq = (Long) change.get("erp_sequence");
        if (rec.product != null && seq <= rec.product.erpSequence) {
            return;
        }
        SkuRecord.Product p = new SkuRecord.Product();
        p.active = (Boolean) change.get("active");
        p.safetyUnits = (Long) change.get("safety_stock_units");
        long pct = percent("safety_stock_percent", change.get("safety_stock_percent"),
                change.get("safety_stock_pct"));
        p.safetyPct = pct == Long.MIN_VALUE ? 0 : pct;
        p.erpSequence = seq;
        @SuppressWarnings("unchecked")
        List<GenericRecord> overrides = (List<GenericRecord>) change.get("channel_overrides");
        for (GenericRecord o : overrides) {
            SkuRecord.Override over = new SkuRecord.Override();
            over.channel = o.get("channel").toString();
            over.enabled = (Boolean) o.get("enabled");
            over.safetyUnits = (Long) o.get("safety_stock_units");
            long sp = percent("safety_stock_percent", o.get("safety_stock_percent"),
                    o.get("safety_stock_pct"));
            over.safetyPct = sp == Long.MIN_VALUE ? null : sp;
            long share = percent("share_pct", o.get("share_pct"), null);
            over.sharePct = share == Long.MIN_VALUE ? null : share;
            over.buffer = (Long) o.get("buffer");
            over.maxQty = (Long) o.get("max_qty");
            over.minPublish = (Long) o.get("min_publish");
            p.overrides.add(over);
        }
        rec.product = p;
    }

    // ---- order lines ----

    private long hardDeadline(String channel, long now) {
        long maxAge = config.hardHoldMaxAgeMs(channel);
        return maxAge > 0 ? saturatingAdd(now, maxAge) : Long.MIN_VALUE;
    }

    private void reserve(Step t, long now, GenericRecord line) throws Refused {
        if (!(Boolean) line.get("holds_stock")) {
            emitResult(t, line, "RESERVED", 0, 0, false);
            return;
        }
        long quantity = (Long) line.get("quantity");
        if (quantity <= 0) {
            throw new Refused("line.quantity must be at least 1");
        }
        String sku = line.get("sku").toString();
        String orderKey = line.get("order_key").toString();
        String lineId = line.get("line_id").toString();
        String channel = line.get("channel").toString();
        boolean paid = (Boolean) line.get("paid");
        Bytes key = holdKey(sku, orderKey, lineId);
        SkuRecord rec = t.get(sku);
        SkuRecord.Hold hold = holds.get(key);
        if (hold != null) {
            if (hold.state == SkuRecord.SHIPPED) {
                emitResult(t, line, "RESERVED", 0, 0, false);
                return;
            }
            if (hold.quantity == quantity) {
                if (hold.state == SkuRecord.HELD && paid && !hold.hard) {
                    hold.hard = true;
                    setExpiry(sku, hold, hardDeadline(hold.channel, now));
                    holds.put(key, hold);
                }
                if (hold.state == SkuRecord.HELD && hold.backordered > 0) {
                    backorder(rec, line);
                }
                emitResult(t, line, hold.outcome(), hold.reserved, hold.backordered, false);
                return;
            }
            dropHold(sku, rec, hold);
        }
        PeerConfig.Channel policy = config.channel(channel);
        boolean backorder = policy != null && policy.backorder;
        long free = rec.physicalFree();
        int state;
        long reserved;
        long backordered;
        if (quantity <= free) {
            state = SkuRecord.HELD;
            reserved = quantity;
            backordered = 0;
        } else if (!backorder) {
            state = SkuRecord.REJECTED;
            reserved = 0;
            backordered = 0;
        } else {
            state = SkuRecord.HELD;
            reserved = Math.max(0, free);
            backordered = quantity - reserved;
        }
        rec.reserved += reserved;
        rec.backordered += backordered;
        if (backordered > 0) {
            backorder(rec, line);
        }
        hold = new SkuRecord.Hold();
        hold.orderKey = orderKey;
        hold.lineId = lineId;
        hold.channel = channel;
        hold.quantity = quantity;
        hold.reserved = reserved;
        hold.backordered = backordered;
        hold.hard = paid;
        hold.state = state;
        hold.heldAt = now;
        long at;
        if (state == SkuRecord.HELD && !paid) {
            at = saturatingAdd(now, config.softHoldTtlMs(channel));
        } else if (state == SkuRecord.HELD) {
            at = hardDeadline(channel, now);
        } else {
            at = saturatingAdd(now, config.shippedLineRetentionMs);
        }
        setExpiry(sku, hold, at);
        holds.put(key, hold);
        emitResult(t, line, hold.outcome(), reserved, backordered, false);
    }

    private void release(Step t, GenericRecord line) {
        String sku = line.get("sku").toString();
        SkuRecord rec = t.get(sku);
        SkuRecord.Hold hold = holds.get(
                holdKey(sku, line.get("order_key").toString(), line.get("line_id").toString()));
        if (hold != null) {
            dropHold(sku, rec, hold);
        }
        emitResult(t, line, "RELEASED", 0, 0, false);
    }

    private void dropHold(String sku, SkuRecord rec, SkuRecord.Hold hold) {
        if (hold.state == SkuRecord.HELD) {
            rec.reserved -= hold.reserved;
            rec.backordered -= hold.backordered;
            if (hold.backordered > 0) {
                unbackorder(rec, hold.orderKey, hold.lineId);
            }
        }
        setExpiry(sku, hold, Long.MIN_VALUE);
        holds.delete(holdKey(sku, hold.orderKey, hold.lineId));
    }

    // ---- backorders ----

    /** A line id ordered as a number when both are numbers ("2" before "10"), else as text. */
    private static int compareLineIds(String a, String b) {
        try {
            int c = Long.compareUnsigned(Long.parseUnsignedLong(a), Long.parseUnsignedLong(b));
            return c != 0 ? c : a.compareTo(b);
        } catch (NumberFormatException e) {
            return a.compareTo(b);
        }
    }

    private static int rank(SkuRecord.Backorder a, SkuRecord.Backorder b) {
        int c = Long.compare(a.placedAt, b.placedAt);
        if (c != 0) {
            return c;
        }
        c = a.orderKey.compareTo(b.orderKey);
        return c != 0 ? c : compareLineIds(a.lineId, b.lineId);
    }

    private void backorder(SkuRecord rec, GenericRecord line) {
        SkuRecord.Backorder entry = new SkuRecord.Backorder();
        entry.placedAt = (Long) line.get("placed_at");
        entry.orderKey = line.get("order_key").toString();
        entry.lineId = line.get("line_id").toString();
        entry.line = avro.encodeLine(line);
        unbackorder(rec, entry.orderKey, entry.lineId);
        int at = 0;
        while (at < rec.backorders.size() && rank(rec.backorders.get(at), entry) < 0) {
            at++;
        }
        rec.backorders.add(at, entry);
    }

    private static void unbackorder(SkuRecord rec, String orderKey, String lineId) {
        rec.backorders.removeIf(b -> b.orderKey.equals(orderKey) && b.lineId.equals(lineId));
    }

    private void fillBackorders(Step t, String sku) {
        SkuRecord rec = t.get(sku);
        long free = rec.physicalFree();
        List<SkuRecord.Backorder> waiting = new ArrayList<>(rec.backorders);
        rec.backorders.clear();
        for (SkuRecord.Backorder entry : waiting) {
            if (free <= 0) {
                rec.backorders.add(entry);
                continue;
            }
            Bytes key = holdKey(sku, entry.orderKey, entry.lineId);
            SkuRecord.Hold hold = holds.get(key);
            if (hold == null || hold.state != SkuRecord.HELD || hold.backordered <= 0) {
                continue;
            }
            long take = Math.min(free, hold.backordered);
            free -= take;
            hold.reserved += take;
            hold.backordered -= take;
            rec.reserved += take;
            rec.backordered -= take;
            holds.put(key, hold);
            GenericRecord line;
            try {
                line = avro.decodeLine(entry.line);
            } catch (IOException e) {
                throw new IllegalStateException("a stored backorder does not decode", e);
            }
            emitResult(t, line, hold.backordered > 0 ? "BACKORDERED" : "RESERVED", hold.reserved,
                    hold.backordered, true);
            if (hold.backordered > 0) {
                rec.backorders.add(entry);
            }
        }
    }

    // ---- outputs ----

    private void emitResult(Step t, GenericRecord line, String outcome, long reserved,
            long backordered, boolean filled) {
        GenericData.Record r = new GenericData.Record(Avro.LINE_RESULT);
        for (String f : new String[] {"order_key", "channel", "channel_order_id", "revision",
                "lines_in_revision", "line_id", "sku", "quantity", "paid", "cancelled",
                "placed_at", "unit_price", "line_total", "currency", "order"}) {
            r.put(f, line.get(f));
        }
        r.put("fulfilled_by", new GenericData.EnumSymbol(
                Avro.LINE_RESULT.getField("fulfilled_by").schema(), line.get("fulfilled_by").toString()));
        r.put("outcome", new GenericData.EnumSymbol(
                Avro.LINE_RESULT.getField("outcome").schema(), outcome));
        r.put("reserved", reserved);
        r.put("backordered", backordered);
        r.put("filled", filled);
        byte[] key = line.get("order_key").toString().getBytes(StandardCharsets.UTF_8);
        context.forward(t.input.withKey(key).withValue(avro.encodeLineResult(r)),
                LINE_RESULT_SINK);
    }

    private void allocate(Step t, String sku, SkuRecord rec, long now) {
        for (PeerConfig.Channel policy : config.channels) {
            long quantity = rec.channelQuantity(policy);
            SkuRecord.Published pub = null;
            for (SkuRecord.Published p : rec.published) {
                if (p.channel.equals(policy.name)) {
                    pub = p;
                    break;
                }
            }
            if (pub != null && pub.quantity == quantity) {
                continue;
            }
            if (pub == null) {
                pub = new SkuRecord.Published();
                pub.channel = policy.name;
                rec.published.add(pub);
            }
            pub.quantity = quantity;
            pub.version += 1;
            GenericData.Record a = new GenericData.Record(Avro.AVAILABILITY);
            a.put("event_id", avro.eventId(policy.name, sku, pub.version));
            a.put("channel", policy.name);
            a.put("sku", sku);
            a.put("quantity", quantity);
            a.put("version", pub.version);
            a.put("event_time", now);
            byte[] key = (policy.name + "|" + sku).getBytes(StandardCharsets.UTF_8);
            context.forward(t.input.withKey(key).withValue(avro.encodeAvailability(a)),
                    AVAILABILITY_SINK);
        }
    }
}
