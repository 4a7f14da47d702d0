package dev.shelfsync.peer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;

/**
 * The pipeline's Avro, framed as it frames it: single-object encoding ({@code 0xC3 0x01}, the
 * 8-byte little-endian CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, the
 * datum) and, on input, the Confluent wire format ({@code 0x00}, 4-byte schema id, datum) too.
 * Generic records over the schemas in {@code schemas/avro/} (on the classpath): no generated
 * classes, so the peer reads exactly the files the pipeline compiles in.
 *
 * <p>One instance per stream task (Avro readers and writers are not thread-safe).
 */
final class Avro {
    static final Schema COMMAND = load("InventoryCommand.avsc");
    static final Schema AVAILABILITY = load("ChannelAvailability.avsc");
    static final Schema LINE_RESULT = load("LineResult.avsc");
    static final Schema LINE_COMMAND = COMMAND.getField("line").schema().getTypes().get(1);

    private final GenericDatumReader<GenericRecord> commandReader =
            new GenericDatumReader<>(COMMAND);
    private final GenericDatumReader<GenericRecord> lineReader =
            new GenericDatumReader<>(LINE_COMMAND);
    private final GenericDatumWriter<GenericRecord> availabilityWriter =
            new GenericDatumWriter<>(AVAILABILITY);
    private final GenericDatumWriter<GenericRecord> lineResultWriter =
            new GenericDatumWriter<>(LINE_RESULT);
    private final GenericDatumWriter<GenericRecord> lineWriter =
            new GenericDatumWriter<>(LINE_COMMAND);
    private final byte[] availabilityHeader = header(AVAILABILITY);
    private final byte[] lineResultHeader = header(LINE_RESULT);
    private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(512);
    private BinaryDecoder decoder;
    private BinaryEncoder encoder;
    private final MessageDigest md5;

    Avro() {
        try {
            md5 = MessageDigest.getInstance("MD5");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Schema load(String file) {
        try (InputStream in = Avro.class.getResourceAsStream("/avro/" + file)) {
            if (in == null) {
                throw new IllegalStateException("schema " + file + " is not on the classpath");
            }
            return new Schema.Parser().parse(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static byte[] header(Schema schema) {
        long fp = SchemaNormalization.parsingFingerprint64(schema);
        byte[] h = new byte[10];
        h[0] = (byte) 0xC3;
        h[1] = 0x01;
        for (int i = 0; i < 8; i++) {
            h[2 + i] = (byte) (fp >>> (8 * i));
        }
        return h;
    }

    /** Decodes a framed InventoryCommand. */
    GenericRecord decodeCommand(byte[] bytes) throws IOException {
        int start;
        if (bytes.length >= 10 && (bytes[0] & 0xff) == 0xC3 && bytes[1] == 0x01) {
            start = 10;
        } else if (bytes.length >= 5 && bytes[0] == 0x00) {
            start = 5;
        } else {
            throw new IOException("unknown framing");
        }
        decoder = DecoderFactory.get().binaryDecoder(bytes, start, bytes.length - start, decoder);
        return commandReader.read(null, decoder);
    }

    GenericRecord decodeLine(byte[] bytes) throws IOException {
        decoder = DecoderFactory.get().binaryDecoder(bytes, decoder);
        return lineReader.read(null, decoder);
    }

    byte[] encodeLine(GenericRecord line) {
        return write(null, lineWriter, line);
    }

    byte[] encodeAvailability(GenericRecord r) {
        return write(availabilityHeader, availabilityWriter, r);
    }

    byte[] encodeLineResult(GenericRecord r) {
        return write(lineResultHeader, lineResultWriter, r);
    }

    private byte[] write(byte[] header, GenericDatumWriter<GenericRecord> w, GenericRecord r) {
        buffer.reset();
        if (header != null) {
            buffer.write(header, 0, header.length);
        }
        encoder = EncoderFactory.get().binaryEncoder(buffer, encoder);
        try {
            w.write(r, encoder);
            encoder.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return buffer.toByteArray();
    }

    /**
     * The availability event id: a 128-bit hash, as 32 hex digits, of channel, SKU and version,
     * each length-prefixed (8-byte little-endian length). The pipeline hashes the same bytes
     * with XXH3-128, which the JDK does not have; MD5 stands in (same width, deterministic).
     */
    String eventId(String channel, String sku, long version) {
        md5.reset();
        part(channel.getBytes(StandardCharsets.UTF_8));
        part(sku.getBytes(StandardCharsets.UTF_8));
        byte[] v = new byte[8];
        for (int i = 0; i < 8; i++) {
            v[i] = (byte) (version >>> (56 - 8 * i));
        }
        part(v);
        byte[] d = md5.digest();
        StringBuilder s = new StringBuilder(32);
        for (byte b : d) {
            s.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
        }
        return s.toString();
    }

    private void part(byte[] bytes) {
        long n = bytes.length;
        for (int i = 0; i < 8; i++) {
            md5.update((byte) (n >>> (8 * i)));
        }
        md5.update(bytes);
    }
}
