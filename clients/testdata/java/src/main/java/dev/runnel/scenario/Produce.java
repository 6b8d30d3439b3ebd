package dev.runnel.scenario;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.model.PutRecordRequest;
import software.amazon.awssdk.services.kinesis.model.PutRecordResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequest;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResultEntry;

/**
 * Puts records with the AWS SDK for Java v2 (CBOR): for each round, one
 * record per partition key, the odd rounds with PutRecord and the even
 * ones with one PutRecords, retrying only the failed entries.
 *
 * <p>Arguments: stream, keys, rounds (-1: until standard input closes),
 * pause between rounds in ms, and optionally the first round's number
 * (default 0). Each
 * record's data is "key round epoch-millis"; each acknowledged record is
 * printed as "PUT key round shard sequence-number".
 */
public final class Produce {
    public static void main(String[] args) throws Exception {
        String stream = args[0];
        int keys = Integer.parseInt(args[1]);
        int rounds = Integer.parseInt(args[2]);
        long pause = Long.parseLong(args[3]);
        int first = args.length > 4 ? Integer.parseInt(args[4]) : 0;
        AtomicBoolean stop = new AtomicBoolean();
        if (rounds < 0) {
            Thread stdin = new Thread(() -> {
                try {
                    System.in.transferTo(OutputStream.nullOutputStream());
                } catch (IOException e) {
                    System.err.println("reading standard input: " + e);
                }
                stop.set(true);
            });
            stdin.setDaemon(true);
            stdin.start();
        }
        try (KinesisAsyncClient kinesis = Clients.kinesis()) {
            for (int round = first; rounds < 0 ? !stop.get() : round < first + rounds; round++) {
                if (round % 2 == 1) {
                    for (int k = 0; k < keys; k++) {
                        String key = key(k);
                        PutRecordResponse r = kinesis.putRecord(PutRecordRequest.builder()
                                .streamName(stream)
                                .partitionKey(key)
                                .data(data(key, round))
                                .build()).join();
                        Clients.OUT.println("PUT " + key + " " + round + " " + r.shardId() + " " + r.sequenceNumber());
                    }
                } else {
                    putRecords(kinesis, stream, keys, round);
                }
                if (pause > 0) {
                    Thread.sleep(pause);
                }
            }
        }
    }

    static String key(int k) {
        return String.format("key-%02d", k);
    }

    static SdkBytes data(String key, int round) {
        return SdkBytes.fromUtf8String(key + " " + round + " " + System.currentTimeMillis());
    }

    private static void putRecords(KinesisAsyncClient kinesis, String stream, int keys, int round) throws Exception {
        List<String> pending = new ArrayList<>();
        for (int k = 0; k < keys; k++) {
            pending.add(key(k));
        }
        for (int attempt = 0; !pending.isEmpty(); attempt++) {
            if (attempt == 20) {
                throw new IllegalStateException("PutRecords: " + pending.size() + " records still failing after 20 attempts");
            }
            if (attempt > 0) {
                Thread.sleep(100L * attempt);
            }
            List<PutRecordsRequestEntry> entries = new ArrayList<>();
            for (String key : pending) {
                entries.add(PutRecordsRequestEntry.builder().partitionKey(key).data(data(key, round)).build());
            }
            PutRecordsResponse r = kinesis.putRecords(PutRecordsRequest.builder()
                    .streamName(stream)
                    .records(entries)
                    .build()).join();
            // Each key appears once per request, and the next round starts
            // only when every key of this one is stored: order per key holds.
            List<String> failed = new ArrayList<>();
            for (int i = 0; i < pending.size(); i++) {
                PutRecordsResultEntry e = r.records().get(i);
                if (e.errorCode() != null) {
                    System.err.println("PutRecords: " + pending.get(i) + ": " + e.errorCode() + ": " + e.errorMessage());
                    failed.add(pending.get(i));
                } else {
                    Clients.OUT.println("PUT " + pending.get(i) + " " + round + " " + e.shardId() + " " + e.sequenceNumber());
                }
            }
            pending = failed;
        }
    }
}
