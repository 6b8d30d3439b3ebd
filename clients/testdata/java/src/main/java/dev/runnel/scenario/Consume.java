package dev.runnel.scenario;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.kinesis.common.ConfigsBuilder;
import software.amazon.kinesis.common.InitialPositionInStream;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.lifecycle.events.InitializationInput;
import software.amazon.kinesis.lifecycle.events.LeaseLostInput;
import software.amazon.kinesis.lifecycle.events.ProcessRecordsInput;
import software.amazon.kinesis.lifecycle.events.ShardEndedInput;
import software.amazon.kinesis.lifecycle.events.ShutdownRequestedInput;
import software.amazon.kinesis.metrics.MetricsLevel;
import software.amazon.kinesis.processor.ShardRecordProcessor;
import software.amazon.kinesis.retrieval.KinesisClientRecord;
import software.amazon.kinesis.retrieval.polling.PollingConfig;

/**
 * A KCL 3 consumer application: one worker that takes leases on the
 * stream's shards from TRIM_HORIZON, prints every record and checkpoints
 * after a batch when the last checkpoint is 500 ms old, and at each shard's
 * end.
 *
 * <p>Arguments: stream, application name, worker id, "polling" or
 * "fanout". Lines printed: "INIT worker shard", "REC worker shard
 * sequence-number sub-sequence-number latency-ms data" (latency is now
 * minus the epoch-millis the data ends with, -1 when it has none), "CKPT
 * worker shard sequence-number" once a batch up to that record is
 * checkpointed, "END
 * worker shard", "LOST worker shard". SIGTERM shuts the worker down
 * gracefully.
 */
public final class Consume {
    public static void main(String[] args) throws Exception {
        String stream = args[0];
        String app = args[1];
        String worker = args[2];
        boolean fanOut = switch (args[3]) {
            case "polling" -> false;
            case "fanout" -> true;
            default -> throw new IllegalArgumentException("mode is polling or fanout, not " + args[3]);
        };
        KinesisAsyncClient kinesis = Clients.kinesis();
        ConfigsBuilder cb = new ConfigsBuilder(stream, app, kinesis, Clients.dynamoDB(), Clients.cloudWatch(),
                worker, () -> new Processor(worker));

        var retrieval = cb.retrievalConfig()
                .initialPositionInStreamExtended(
                        InitialPositionInStreamExtended.newInitialPosition(InitialPositionInStream.TRIM_HORIZON));
        if (!fanOut) {
            retrieval.retrievalSpecificConfig(new PollingConfig(stream, kinesis).idleTimeBetweenReadsInMillis(200));
        }
        // Intervals far shorter than the defaults, so that lease takeover
        // and resharding happen within seconds.
        var leases = cb.leaseManagementConfig()
                .failoverTimeMillis(3000)
                .shardSyncIntervalMillis(1000)
                .leasesRecoveryAuditorExecutionFrequencyMillis(2000);
        leases.workerUtilizationAwareAssignmentConfig()
                .workerMetricsReporterFreqInMillis(1000)
                .inMemoryWorkerMetricsCaptureFrequencyMillis(500);
        var coordinator = cb.coordinatorConfig()
                .parentShardPollIntervalMillis(500)
                .shardConsumerDispatchPollIntervalMillis(100)
                .schedulerInitializationBackoffTimeMillis(500);

        Scheduler scheduler = new Scheduler(
                cb.checkpointConfig(),
                coordinator,
                leases,
                cb.lifecycleConfig(),
                cb.metricsConfig().metricsLevel(MetricsLevel.NONE),
                cb.processorConfig(),
                retrieval);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                scheduler.startGracefulShutdown().get(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                System.err.println("graceful shutdown: " + e);
            }
        }));
        scheduler.run();
    }

    static final class Processor implements ShardRecordProcessor {
        /** How often a shard's progress is checkpointed, as KCL applications usually do. */
        private static final long CHECKPOINT_EVERY_MS = 500;

        private final String worker;
        private String shard;
        private long lastCheckpoint;

        Processor(String worker) {
            this.worker = worker;
        }

        @Override
        public void initialize(InitializationInput in) {
            shard = in.shardId();
            Clients.OUT.println("INIT " + worker + " " + shard);
        }

        @Override
        public void processRecords(ProcessRecordsInput in) {
            long now = System.currentTimeMillis();
            for (KinesisClientRecord r : in.records()) {
                byte[] b = new byte[r.data().remaining()];
                r.data().get(b);
                String data = new String(b, StandardCharsets.UTF_8);
                long latency = -1;
                int sp = data.lastIndexOf(' ');
                if (sp >= 0) {
                    try {
                        latency = now - Long.parseLong(data.substring(sp + 1));
                    } catch (NumberFormatException e) {
                        latency = -1;
                    }
                }
                Clients.OUT.println("REC " + worker + " " + shard + " " + r.sequenceNumber() + " "
                        + r.subSequenceNumber() + " " + latency + " " + data);
            }
            if (in.records().isEmpty() || now - lastCheckpoint < CHECKPOINT_EVERY_MS) {
                return;
            }
            String last = in.records().get(in.records().size() - 1).sequenceNumber();
            try {
                in.checkpointer().checkpoint();
                lastCheckpoint = now;
                Clients.OUT.println("CKPT " + worker + " " + shard + " " + last);
            } catch (Exception e) {
                System.err.println("checkpoint " + shard + ": " + e);
            }
        }

        @Override
        public void leaseLost(LeaseLostInput in) {
            Clients.OUT.println("LOST " + worker + " " + shard);
        }

        @Override
        public void shardEnded(ShardEndedInput in) {
            try {
                in.checkpointer().checkpoint();
            } catch (Exception e) {
                System.err.println("checkpoint at shard end " + shard + ": " + e);
            }
            Clients.OUT.println("END " + worker + " " + shard);
        }

        @Override
        public void shutdownRequested(ShutdownRequestedInput in) {
            try {
                in.checkpointer().checkpoint();
            } catch (Exception e) {
                System.err.println("checkpoint at shutdown " + shard + ": " + e);
            }
        }
    }
}
