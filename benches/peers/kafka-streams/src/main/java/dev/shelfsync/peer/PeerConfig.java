package dev.shelfsync.peer;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;

/**
 * The inventory stage's settings, as the bench writes them from the topology (the operators
 * crate's {@code InventoryConfig}): channels in publication order with their policies, the hold
 * TTLs and the declared locations. Percentages are hundredths of a percent (12.5 % = 1250), as
 * in the operators crate's {@code Percent}; durations are milliseconds.
 *
 * <pre>
 * channels=amazon,walmart
 * channel.amazon.share_pct=4000
 * channel.amazon.buffer=2
 * channel.amazon.max_qty=50          (absent: no cap)
 * channel.amazon.min_publish=0
 * channel.amazon.eligible=dc-east    (absent: every location; present and empty: none)
 * channel.amazon.oversell=reject     (or backorder)
 * channel.amazon.soft_hold_ttl_ms=…  (absent: soft_hold_ttl_ms)
 * channel.amazon.hard_hold_max_age_ms=2592000000   (0: never)
 * soft_hold_ttl_ms=1800000
 * shipped_line_retention_ms=604800000
 * locations=dc-east,store-nyc        (empty: every location accepted)
 * </pre>
 */
final class PeerConfig {
    /** One channel's policy (the operators crate's {@code ChannelPolicy}). */
    static final class Channel {
        String name;
        long sharePct;
        long buffer;
        Long maxQty;
        long minPublish;
        List<String> eligible;
        boolean backorder;
        Long softHoldTtlMs;
        long hardHoldMaxAgeMs;
    }

    final List<Channel> channels = new ArrayList<>();
    long softHoldTtlMs;
    long shippedLineRetentionMs;
    final List<String> locations = new ArrayList<>();

    static PeerConfig load(Path file) throws IOException {
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            p.load(r);
        }
        PeerConfig c = new PeerConfig();
        for (String name : list(p.getProperty("channels", ""))) {
            Channel ch = new Channel();
            String k = "channel." + name + ".";
            ch.name = name;
            ch.sharePct = Long.parseLong(p.getProperty(k + "share_pct", "10000"));
            ch.buffer = Long.parseLong(p.getProperty(k + "buffer", "0"));
            String max = p.getProperty(k + "max_qty");
            ch.maxQty = max == null ? null : Long.valueOf(max);
            ch.minPublish = Long.parseLong(p.getProperty(k + "min_publish", "0"));
            String eligible = p.getProperty(k + "eligible");
            ch.eligible = eligible == null ? null : list(eligible);
            ch.backorder = "backorder".equals(p.getProperty(k + "oversell", "reject"));
            String soft = p.getProperty(k + "soft_hold_ttl_ms");
            ch.softHoldTtlMs = soft == null ? null : Long.valueOf(soft);
            ch.hardHoldMaxAgeMs = Long.parseLong(p.getProperty(k + "hard_hold_max_age_ms", "0"));
            c.channels.add(ch);
        }
        c.softHoldTtlMs = Long.parseLong(p.getProperty("soft_hold_ttl_ms", "1800000"));
        c.shippedLineRetentionMs =
                Long.parseLong(p.getProperty("shipped_line_retention_ms", "604800000"));
        c.locations.addAll(list(p.getProperty("locations", "")));
        return c;
    }

    private static List<String> list(String text) {
        if (text.isEmpty()) {
            return new ArrayList<>();
        }
        return new ArrayList<>(Arrays.asList(text.split(",")));
    }

    Channel channel(String name) {
        for (Channel c : channels) {
            if (c.name.equals(name)) {
                return c;
            }
        }
        return null;
    }

    long softHoldTtlMs(String channel) {
        Channel c = channel(channel);
        return c != null && c.softHoldTtlMs != null ? c.softHoldTtlMs : softHoldTtlMs;
    }

    long hardHoldMaxAgeMs(String channel) {
        Channel c = channel(channel);
        return c == null ? 0 : c.hardHoldMaxAgeMs;
    }
}
