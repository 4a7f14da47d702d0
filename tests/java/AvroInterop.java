// Apache Avro for Java, the standard library, against shelfsync's single-object encoding.
// Run as a single-file program (Java 11+): java -cp "$AVRO_LIBS/*" tests/java/AvroInterop.java …
//
//   write <schema.avsc> <datum as Avro JSON>   prints the single-object message (hex) that
//                                              BinaryMessageEncoder writes
//   read <schema.avsc> <hex message>           prints the record BinaryMessageDecoder reads (JSON)
//   fingerprint <schema.avsc>                  prints SchemaNormalization's canonical form and
//                                              parsingFingerprint64 (hex, little-endian as on the wire)
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;

public class AvroInterop {
    public static void main(String[] args) throws Exception {
        Schema schema = new Schema.Parser().parse(new File(args[1]));
        switch (args[0]) {
            case "write": {
                GenericDatumReader<GenericRecord> json = new GenericDatumReader<>(schema);
                GenericRecord record = json.read(null, DecoderFactory.get().jsonDecoder(schema, args[2]));
                BinaryMessageEncoder<GenericRecord> encoder = new BinaryMessageEncoder<>(GenericData.get(), schema);
                System.out.println(hex(encoder.encode(record)));
                break;
            }
            case "read": {
                BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(GenericData.get(), schema);
                System.out.println(decoder.decode(unhex(args[2])));
                break;
            }
            case "fingerprint": {
                System.out.println(SchemaNormalization.toParsingForm(schema));
                long fp = SchemaNormalization.parsingFingerprint64(schema);
                ByteBuffer le = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(fp);
                le.flip();
                System.out.println(hex(le));
                break;
            }
            default:
                throw new IllegalArgumentException("usage: write|read|fingerprint <schema.avsc> [datum]");
        }
    }

    static String hex(ByteBuffer buf) {
        StringBuilder sb = new StringBuilder();
        while (buf.hasRemaining()) sb.append(String.format("%02x", buf.get()));
        return sb.toString();
    }

    static byte[] unhex(String s) {
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        return out;
    }
}
