package dev.shelfsync.peer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Everything the peer keeps for one SKU, the value of the {@code inventory} store: positions,
 * product master, reserved and backordered totals, what each channel last published and the
 * backordered lines. The line holds are {@link Hold}s in a store of their own, keyed by
 * (SKU, order key, line id), as the operators crate keeps them: inside the SKU record, a SKU
 * with many open orders would re-serialize all of them on every command. The serdes are
 * hand-written binary ones (what a team would write to keep Avro/JSON off the hot path).
 *
 * <p>Allocation (the operators crate's {@code allocate_channels}): safety stock = units +
 * ceil(pct × total on-hand); ATS = eligible on-hand − reserved − backordered − safety stock,
 * floored at 0; published = floor(share × ATS) − buffer, floored at 0, capped, 0 below the
 * minimum; 0 for an inactive SKU or a channel its product disables.
 */
final class SkuRecord {
    static final class Position {
        String location;
        long onHand;
        long erpSequence;
    }

    static final class Override {
        String channel;
        boolean enabled;
        Long safetyUnits;
        Long safetyPct;
        Long sharePct;
        Long buffer;
        Long maxQty;
        Long minPublish;
    }

    static final class Product {
        boolean active;
        long safetyUnits;
        long safetyPct;
        List<Override> overrides = new ArrayList<>();
        long erpSequence;
    }

    static final class Published {
        String channel;
        long quantity;
        long version;
    }

    static final int HELD = 0;
    static final int REJECTED = 1;
    static final int SHIPPED = 2;

    static final class Hold {
        String orderKey;
        String lineId;
        String channel;
        long quantity;
        long reserved;
        long backordered;
        boolean hard;
        int state;
        /** Long.MIN_VALUE: none. */
        long expiresAt = Long.MIN_VALUE;
        long heldAt;

        String outcome() {
            if (state == REJECTED) {
                return "REJECTED";
            }
            return state == HELD && backordered > 0 ? "BACKORDERED" : "RESERVED";
        }

        byte[] encode() {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream(96);
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                out.writeByte(1);
                out.writeUTF(orderKey);
                out.writeUTF(lineId);
                out.writeUTF(channel);
                out.writeLong(quantity);
                out.writeLong(reserved);
                out.writeLong(backordered);
                out.writeBoolean(hard);
                out.writeByte(state);
                out.writeLong(expiresAt);
                out.writeLong(heldAt);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return bytes.toByteArray();
        }

        static Hold decode(byte[] bytes) {
            Hold h = new Hold();
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes))) {
                if (in.readByte() != 1) {
                    throw new IllegalStateException("unknown hold format");
                }
                h.orderKey = in.readUTF();
                h.lineId = in.readUTF();
                h.channel = in.readUTF();
                h.quantity = in.readLong();
                h.reserved = in.readLong();
                h.backordered = in.readLong();
                h.hard = in.readBoolean();
                h.state = in.readByte();
                h.expiresAt = in.readLong();
                h.heldAt = in.readLong();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return h;
        }
    }

    /** A backordered line: the line command it came with (Avro), ranked for filling. */
    static final class Backorder {
        long placedAt;
        String orderKey;
        String lineId;
        byte[] line;
    }

    Product product;
    final List<Position> positions = new ArrayList<>();
    long reserved;
    long backordered;
    final List<Published> published = new ArrayList<>();
    final List<Backorder> backorders = new ArrayList<>();

    long totalOnHand() {
        long sum = 0;
        for (Position p : positions) {
            sum += Math.max(0, p.onHand);
        }
        return sum;
    }

    long onHandAt(List<String> locations) {
        if (locations == null) {
            return totalOnHand();
        }
        long sum = 0;
        for (Position p : positions) {
            if (locations.contains(p.location)) {
                sum += Math.max(0, p.onHand);
            }
        }
        return sum;
    }

    long physicalFree() {
        return totalOnHand() - reserved;
    }

    private Override overrideFor(String channel) {
        if (product == null) {
            return null;
        }
        for (Override o : product.overrides) {
            if (o.channel.equals(channel)) {
                return o;
            }
        }
        return null;
    }

    static long pctFloor(long hundredths, long n) {
        return Math.max(0, n) * hundredths / 10_000;
    }

    static long pctCeil(long hundredths, long n) {
        return (Math.max(0, n) * hundredths + 9_999) / 10_000;
    }

    long safetyStock(String channel) {
        if (product == null) {
            return 0;
        }
        Override o = overrideFor(channel);
        long units = o != null && o.safetyUnits != null ? o.safetyUnits : product.safetyUnits;
        long pct = o != null && o.safetyPct != null ? o.safetyPct : product.safetyPct;
        return units + pctCeil(pct, totalOnHand());
    }

    long ats(PeerConfig.Channel policy) {
        long eligible = onHandAt(policy.eligible);
        return Math.max(0, eligible - reserved - backordered - safetyStock(policy.name));
    }

    long channelQuantity(PeerConfig.Channel policy) {
        Override o = overrideFor(policy.name);
        boolean active = product == null || product.active;
        if (!active || (o != null && !o.enabled)) {
            return 0;
        }
        long share = o != null && o.sharePct != null ? o.sharePct : policy.sharePct;
        long buffer = o != null && o.buffer != null ? o.buffer : policy.buffer;
        Long max = o != null && o.maxQty != null ? o.maxQty : policy.maxQty;
        long min = o != null && o.minPublish != null ? o.minPublish : policy.minPublish;
        long qty = Math.max(0, pctFloor(share, ats(policy)) - buffer);
        if (max != null) {
            qty = Math.min(qty, max);
        }
        return qty < min ? 0 : qty;
    }

    // ---- serde ----

    byte[] encode() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeByte(1);
            out.writeBoolean(product != null);
            if (product != null) {
                out.writeBoolean(product.active);
                out.writeLong(product.safetyUnits);
                out.writeLong(product.safetyPct);
                out.writeLong(product.erpSequence);
                out.writeInt(product.overrides.size());
                for (Override o : product.overrides) {
                    out.writeUTF(o.channel);
                    out.writeBoolean(o.enabled);
                    for (Long v : new Long[] {o.safetyUnits, o.safetyPct, o.sharePct, o.buffer,
                            o.maxQty, o.minPublish}) {
                        writeOpt(out, v);
                    }
                }
            }
            out.writeInt(positions.size());
            for (Position p : positions) {
                out.writeUTF(p.location);
                out.writeLong(p.onHand);
                out.writeLong(p.erpSequence);
            }
            out.writeLong(reserved);
            out.writeLong(backordered);
            out.writeInt(published.size());
            for (Published p : published) {
                out.writeUTF(p.channel);
                out.writeLong(p.quantity);
                out.writeLong(p.version);
            }
            out.writeInt(backorders.size());
            for (Backorder b : backorders) {
                out.writeLong(b.placedAt);
                out.writeUTF(b.orderKey);
                out.writeUTF(b.lineId);
                out.writeInt(b.line.length);
                out.write(b.line);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return bytes.toByteArray();
    }

    static SkuRecord decode(byte[] bytes) {
        SkuRecord r = new SkuRecord();
        try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes))) {
            if (in.readByte() != 1) {
                throw new IllegalStateException("unknown SKU record format");
            }
            if (in.readBoolean()) {
                Product p = new Product();
                p.active = in.readBoolean();
                p.safetyUnits = in.readLong();
                p.safetyPct = in.readLong();
                p.erpSequence = in.readLong();
                for (int i = in.readInt(); i > 0; i--) {
                    Override o = new Override();
                    o.channel = in.readUTF();
                    o.enabled = in.readBoolean();
                    o.safetyUnits = readOpt(in);
                    o.safetyPct = readOpt(in);
                    o.sharePct = readOpt(in);
                    o.buffer = readOpt(in);
                    o.maxQty = readOpt(in);
                    o.minPublish = readOpt(in);
                    p.overrides.add(o);
                }
                r.product = p;
            }
            for (int i = in.readInt(); i > 0; i--) {
                Position p = new Position();
                p.location = in.readUTF();
                p.onHand = in.readLong();
                p.erpSequence = in.readLong();
                r.positions.add(p);
            }
            r.reserved = in.readLong();
            r.backordered = in.readLong();
            for (int i = in.readInt(); i > 0; i--) {
                Published p = new Published();
                p.channel = in.readUTF();
                p.quantity = in.readLong();
                p.version = in.readLong();
                r.published.add(p);
            }
            for (int i = in.readInt(); i > 0; i--) {
                Backorder b = new Backorder();
                b.placedAt = in.readLong();
                b.orderKey = in.readUTF();
                b.lineId = in.readUTF();
                b.line = new byte[in.readInt()];
                in.readFully(b.line);
                r.backorders.add(b);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return r;
    }

    private static void writeOpt(DataOutputStream out, Long v) throws IOException {
        out.writeBoolean(v != null);
        if (v != null) {
            out.writeLong(v);
        }
    }

    private static Long readOpt(DataInputStream in) throws IOException {
        return in.readBoolean() ? in.readLong() : null;
    }
}
