package dev.runnel.scenario;

import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Future;

import com.amazonaws.auth.AWSStaticCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import com.amazonaws.services.kinesis.producer.KinesisProducer;
import com.amazonaws.services.kinesis.producer.KinesisProducerConfiguration;
import com.amazonaws.services.kinesis.producer.UserRecordResult;

/**
 * Puts user records through the Kinesis Producer Library with aggregation
 * on: the KPL's native binary packs many user records into each Kinesis
 * record. RUNNEL_ENDPOINT must be https:// (the KPL speaks only TLS; it is
 * told not to verify runnel's self-signed certificate), and STS calls go to
 * RUNNEL_STS.
 *
 * <p>Arguments: stream, keys, records per key. Each user record's data is
 * "key index epoch-millis"; each acknowledged one is printed as "PUT key
 * index shard sequence-number".
 */
public final class KplProduce {
    static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) {
            throw new IllegalArgumentException(name + " is not set");
        }
        return v;
    }

    public static void main(String[] args) throws Exception {
        String stream = args[0];
        int keys = Integer.parseInt(args[1]);
        int perKey = Integer.parseInt(args[2]);
        URI endpoint = URI.create(env("RUNNEL_ENDPOINT"));
        URI sts = URI.create(env("RUNNEL_STS"));
        KinesisProducerConfiguration cfg = new KinesisProducerConfiguration()
                .setRegion(env("AWS_REGION"))
                .setCredentialsProvider(new AWSStaticCredentialsProvider(new BasicAWSCredentials(
                        env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))))
                .setKinesisEndpoint(endpoint.getHost())
                .setKinesisPort(endpoint.getPort())
                .setVerifyCertificate(false)
                .setStsEndpoint(sts.getHost())
                .setStsPort(sts.getPort())
                .setMetricsLevel("none")
                .setAggregationEnabled(true)
                .setRecordMaxBufferedTime(200)
                .setLogLevel("warning");
        KinesisProducer kpl = new KinesisProducer(cfg);
        try {
            List<String> keysOf = new ArrayList<>();
            List<Integer> indexOf = new ArrayList<>();
            List<Future<UserRecordResult>> results = new ArrayList<>();
            for (int i = 0; i < perKey; i++) {
                for (int k = 0; k < keys; k++) {
                    String key = String.format("key-%02d", k);
                    String data = key + " " + i + " " + System.currentTimeMillis();
                    results.add(kpl.addUserRecord(stream, key, ByteBuffer.wrap(data.getBytes(StandardCharsets.UTF_8))));
                    keysOf.add(key);
                    indexOf.add(i);
                    if (results.size() == 1) {
                        // The KPL aggregates only once it knows the shard
                        // map, which it lists at start: the first record's
                        // acknowledgement comes after that.
                        results.get(0).get();
                    }
                }
            }
            kpl.flushSync();
            for (int i = 0; i < results.size(); i++) {
                UserRecordResult r = results.get(i).get();
                if (!r.isSuccessful()) {
                    StringBuilder why = new StringBuilder();
                    r.getAttempts().forEach(a -> why.append(' ').append(a.getErrorCode()).append(": ").append(a.getErrorMessage()).append(';'));
                    throw new IllegalStateException("KPL gave up on " + keysOf.get(i) + " " + indexOf.get(i) + ":" + why);
                }
                System.out.println("PUT " + keysOf.get(i) + " " + indexOf.get(i) + " " + r.getShardId() + " "
                        + r.getSequenceNumber());
            }
        } finally {
            kpl.destroy();
        }
    }
}
