package dev.shelfsync.peer;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of shelfsync's inventory stage: reads SKU-keyed inventory commands,
 * writes channel availability (key {@code channel|sku}) and line results (key: order key).
 *
 * <pre>
 * java -cp 'DIR/*' dev.shelfsync.peer.Peer --bootstrap H:P --application-id ID \
 *   --input TOPIC --availability TOPIC --line-results TOPIC --config FILE --state-dir DIR \
 *   [--guarantee at_least_once|exactly_once_v2] [--threads 1] [--commit-interval-ms N] \
 *   [--prop streams.or.client.property=value]...
 * </pre>
 *
 * <p>It prints {@code state <STATE>} on every state change, {@code progress <commands taken>
 * <commands refused>} every 100 ms, and {@code restore-start <topic-partition>} and {@code
 * restore-end <topic-partition> <records> <microseconds>} around each changelog partition it
 * restores, on stdout (the bench samples them), runs until it is stopped
 * (SIGTERM closes it cleanly, committing under exactly_once_v2), and exits 1 if a stream thread
 * dies. Commit interval: Kafka Streams' own default unless given (100 ms under
 * exactly_once_v2, 30 s under at_least_once).
 */
public final class Peer {
    private Peer() {}

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        String input = null;
        String availability = null;
        String lineResults = null;
        Path configFile = null;
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        for (int i = 0; i < args.length; i += 2) {
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(args[i] + " needs a value");
            }
            String v = args[i + 1];
            switch (args[i]) {
                case "--bootstrap" -> props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, v);
                case "--application-id" -> props.put(StreamsConfig.APPLICATION_ID_CONFIG, v);
                case "--input" -> input = v;
                case "--availability" -> availability = v;
                case "--line-results" -> lineResults = v;
                case "--config" -> configFile = Path.of(v);
                case "--state-dir" -> props.put(StreamsConfig.STATE_DIR_CONFIG, v);
                case "--guarantee" -> props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, v);
                case "--threads" -> props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, v);
                case "--commit-interval-ms" -> props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, v);
                case "--prop" -> {
                    int eq = v.indexOf('=');
                    props.put(v.substring(0, eq), v.substring(eq + 1));
                }
                default -> throw new IllegalArgumentException("unknown flag " + args[i]);
            }
        }
        if (input == null || availability == null || lineResults == null || configFile == null) {
            throw new IllegalArgumentException(
                    "--input, --availability, --line-results and --config are required");
        }
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        PeerConfig config = PeerConfig.load(configFile);

        Serde<SkuRecord> skuSerde = Serdes.serdeFrom(
                (Serializer<SkuRecord>) (topic, r) -> r == null ? null : r.encode(),
                (Deserializer<SkuRecord>) (topic, b) -> b == null ? null : SkuRecord.decode(b));
        Topology topology = new Topology();
        topology.addSource("commands", Serdes.ByteArray().deserializer(),
                Serdes.ByteArray().deserializer(), input);
        topology.addProcessor(InventoryProcessor.STORE, () -> new InventoryProcessor(config),
                "commands");
        topology.addStateStore(Stores.keyValueStoreBuilder(
                        Stores.persistentKeyValueStore(InventoryProcessor.STORE), Serdes.String(),
                        skuSerde).withCachingEnabled(), InventoryProcessor.STORE);
        Serde<SkuRecord.Hold> holdSerde = Serdes.serdeFrom(
                (Serializer<SkuRecord.Hold>) (topic, h) -> h == null ? null : h.encode(),
                (Deserializer<SkuRecord.Hold>) (topic, b) -> b == null ? null : SkuRecord.Hold.decode(b));
        topology.addStateStore(Stores.keyValueStoreBuilder(
                        Stores.persistentKeyValueStore(InventoryProcessor.HOLD_STORE),
                        Serdes.Bytes(), holdSerde).withCachingEnabled(), InventoryProcessor.STORE);
        topology.addStateStore(Stores.keyValueStoreBuilder(
                        Stores.persistentKeyValueStore(InventoryProcessor.EXPIRY_STORE),
                        Serdes.Bytes(), Serdes.ByteArray()).withCachingEnabled(),
                InventoryProcessor.STORE);
        topology.addSink(InventoryProcessor.AVAILABILITY_SINK, availability,
                Serdes.ByteArray().serializer(), Serdes.ByteArray().serializer(),
                InventoryProcessor.STORE);
        topology.addSink(InventoryProcessor.LINE_RESULT_SINK, lineResults,
                Serdes.ByteArray().serializer(), Serdes.ByteArray().serializer(),
                InventoryProcessor.STORE);
        System.err.println(topology.describe());

        KafkaStreams streams = new KafkaStreams(topology, props);
        // Stopped, it leaves the group at once (Kafka Streams' default is to stay until the
        // session times out, 45 s), so the instance that replaces it gets its tasks at once,
        // as the pipeline's does.
        final CloseOptions leave = CloseOptions
                .groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(30));
        CountDownLatch done = new CountDownLatch(1);
        AtomicInteger exit = new AtomicInteger(0);
        streams.setStateListener((now, before) -> {
            System.out.println("state " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        // Restoration, per store partition: the bench sums records and time as it does for
        // the pipeline's `restore finished` logs.
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            private final Map<TopicPartition, Long> started = new ConcurrentHashMap<>();

            @Override
            public void onRestoreStart(TopicPartition partition, String store, long start,
                    long end) {
                started.put(partition, System.nanoTime());
                System.out.println("restore-start " + partition);
                System.out.flush();
            }

            @Override
            public void onBatchRestored(TopicPartition partition, String store, long batchEnd,
                    long restored) {}

            @Override
            public void onRestoreEnd(TopicPartition partition, String store, long total) {
                Long t0 = started.remove(partition);
                long micros = t0 == null ? 0 : (System.nanoTime() - t0) / 1000;
                System.out.println("restore-end " + partition + " " + total + " " + micros);
                System.out.flush();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            e.printStackTrace();
            exit.set(1);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Thread reporter = new Thread(() -> {
            while (true) {
                System.out.println("progress " + InventoryProcessor.PROCESSED.get() + " "
                        + InventoryProcessor.REFUSED.get());
                System.out.flush();
                try {
                    Thread.sleep(100);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "progress");
        reporter.setDaemon(true);
        reporter.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(leave);
            System.out.println("progress " + InventoryProcessor.PROCESSED.get() + " "
                    + InventoryProcessor.REFUSED.get());
            System.out.println("closed");
            System.out.flush();
        }, "shutdown"));
        streams.start();
        done.await();
        streams.close(leave);
        System.exit(exit.get());
    }
}
