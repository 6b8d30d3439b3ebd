// Drives runnel serve with the AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis)
// and prints a JSON summary on stdout for scenario/jssdk_test.go.
//
// Usage: node kinesis.mjs
// Environment: RUNNEL_JSSDK (the directory the SDK is installed in, with
// node_modules below it), RUNNEL_ENDPOINT (https://127.0.0.1:PORT),
// RUNNEL_STREAM (the stream to create), NODE_EXTRA_CA_CERTS (runnel's
// certificate), AWS_REGION and credentials.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.RUNNEL_JSSDK, "package.json"));
const {
  KinesisClient,
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  PutRecordCommand,
  PutRecordsCommand,
  ListShardsCommand,
  GetShardIteratorCommand,
  GetRecordsCommand,
  RegisterStreamConsumerCommand,
  DescribeStreamConsumerCommand,
  SubscribeToShardCommand,
  DeregisterStreamConsumerCommand,
  DeleteStreamCommand,
  ListStreamsCommand,
  waitUntilStreamExists,
  waitUntilStreamNotExists,
} = require("@aws-sdk/client-kinesis");

// The whole script is bounded: a hung call fails it rather than the Go test's timeout.
const overall = setTimeout(() => {
  console.error("kinesis.mjs: gave up after 90 s");
  process.exit(3);
}, 90_000);

const endpoint = process.env.RUNNEL_ENDPOINT;
const StreamName = process.env.RUNNEL_STREAM;
const client = new KinesisClient({ endpoint, maxAttempts: 2 });
const enc = new TextEncoder();
const dec = new TextDecoder();
const text = (b) => dec.decode(b);

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const out = {};

await client.send(new CreateStreamCommand({ StreamName, ShardCount: 2 }));
const waited = await waitUntilStreamExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { StreamName });
out.waiter = waited.state;
const summary = await client.send(new DescribeStreamSummaryCommand({ StreamName }));
out.status = summary.StreamDescriptionSummary.StreamStatus;
out.open_shards = summary.StreamDescriptionSummary.OpenShardCount;
const StreamARN = summary.StreamDescriptionSummary.StreamARN;

// PutRecord, then PutRecords with the same partition key: all in one shard, in order.
const first = await client.send(
  new PutRecordCommand({ StreamName, PartitionKey: "pk-a", Data: enc.encode("one") }),
);
const batch = await client.send(
  new PutRecordsCommand({
    StreamName,
    Records: [
      { PartitionKey: "pk-a", Data: enc.encode("two") },
      { PartitionKey: "pk-a", Data: Uint8Array.from([0, 255, 1, 254]) },
    ],
  }),
);
out.batch_failed = batch.FailedRecordCount ?? 0;
out.batch_shards = batch.Records.map((r) => r.ShardId);
const ShardId = first.ShardId;
out.put_shard = ShardId;

const shards = await client.send(new ListShardsCommand({ StreamName }));
out.shards = shards.Shards.map((s) => s.ShardId);

const it = await client.send(
  new GetShardIteratorCommand({ StreamName, ShardId, ShardIteratorType: "TRIM_HORIZON" }),
);
const got = await client.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator, StreamARN }));
out.get_data = got.Records.map((r) => Buffer.from(r.Data).toString("base64"));
out.get_sequence_numbers_match =
  got.Records.length === 3 &&
  got.Records[0].SequenceNumber === first.SequenceNumber &&
  got.Records[1].SequenceNumber === batch.Records[0].SequenceNumber &&
  got.Records[2].SequenceNumber === batch.Records[1].SequenceNumber;
out.get_arrival_is_date = got.Records.every((r) => r.ApproximateArrivalTimestamp instanceof Date);
out.get_has_next_iterator = typeof got.NextShardIterator === "string" && got.NextShardIterator.length > 0;

// Enhanced fan-out.
const reg = await client.send(
  new RegisterStreamConsumerCommand({ StreamARN, ConsumerName: "js-consumer" }),
);
const ConsumerARN = reg.Consumer.ConsumerARN;
for (let i = 0; i < 50; i++) {
  const d = await client.send(new DescribeStreamConsumerCommand({ ConsumerARN }));
  out.consumer_status = d.ConsumerDescription.ConsumerStatus;
  if (out.consumer_status === "ACTIVE") break;
  await sleep(100);
}

// Each subscription is ended by aborting its request once done with it.
const subAbort = new AbortController();
const sub = await withTimeout(
  client.send(
    new SubscribeToShardCommand({ ConsumerARN, ShardId, StartingPosition: { Type: "LATEST" } }),
    { abortSignal: subAbort.signal },
  ),
  15_000,
  "SubscribeToShard",
);
const events = sub.EventStream[Symbol.asyncIterator]();
const next = () => withTimeout(events.next(), 15_000, "the next SubscribeToShardEvent");

// The first event (empty at LATEST) shows the subscription is live; then
// put while subscribed and collect events until all three records came.
let ev = await next();
check(!ev.done && ev.value.SubscribeToShardEvent, "a first SubscribeToShardEvent");
out.first_event_records = ev.value.SubscribeToShardEvent.Records.length;

const live = [];
for (const d of ["live-1", "live-2", "live-3"]) {
  const r = await client.send(
    new PutRecordCommand({ StreamName, PartitionKey: "pk-a", Data: enc.encode(d) }),
  );
  live.push(r);
}
const lastLiveSeq = live[live.length - 1].SequenceNumber;

const received = [];
out.continuation_matches_last_record = true;
out.events_with_records = 0;
for (let i = 0; i < 20 && received.length < live.length; i++) {
  ev = await next();
  check(!ev.done, "the event stream stays open");
  const e = ev.value.SubscribeToShardEvent;
  check(e, `a SubscribeToShardEvent, got ${Object.keys(ev.value)}`);
  if (e.Records.length > 0) {
    out.events_with_records++;
    const lastSeq = e.Records[e.Records.length - 1].SequenceNumber;
    if (e.ContinuationSequenceNumber !== lastSeq) out.continuation_matches_last_record = false;
  }
  for (const r of e.Records) received.push({ data: text(r.Data), seq: r.SequenceNumber });
  out.last_continuation = e.ContinuationSequenceNumber;
  out.millis_behind_latest = e.MillisBehindLatest;
}
out.subscribe_data = received.map((r) => r.data);
out.subscribe_sequence_numbers_match =
  received.length === live.length && received.every((r, i) => r.seq === live[i].SequenceNumber);
out.last_continuation_is_last_put = out.last_continuation === lastLiveSeq;
subAbort.abort();

// A second consumer resumes after the first one's continuation and sees
// only what came later. (Another subscription of the same consumer to the
// same shard is refused within 5 s of the first one, as in Kinesis.) It is
// left registered for DeleteStream's EnforceConsumerDeletion.
const reg2 = await client.send(
  new RegisterStreamConsumerCommand({ StreamARN, ConsumerName: "js-resume" }),
);
for (let i = 0; i < 50; i++) {
  const d = await client.send(new DescribeStreamConsumerCommand({ ConsumerARN: reg2.Consumer.ConsumerARN }));
  if (d.ConsumerDescription.ConsumerStatus === "ACTIVE") break;
  await sleep(100);
}
const resumedAbort = new AbortController();
const resumed = await withTimeout(
  client.send(
    new SubscribeToShardCommand({
      ConsumerARN: reg2.Consumer.ConsumerARN,
      ShardId,
      StartingPosition: { Type: "AFTER_SEQUENCE_NUMBER", SequenceNumber: out.last_continuation },
    }),
    { abortSignal: resumedAbort.signal },
  ),
  15_000,
  "the second SubscribeToShard",
);
const after = await client.send(
  new PutRecordCommand({ StreamName, PartitionKey: "pk-a", Data: enc.encode("after") }),
);
const events2 = resumed.EventStream[Symbol.asyncIterator]();
out.resumed_data = [];
for (let i = 0; i < 20 && out.resumed_data.length === 0; i++) {
  const r = await withTimeout(events2.next(), 15_000, "a resumed SubscribeToShardEvent");
  check(!r.done && r.value.SubscribeToShardEvent, "a resumed SubscribeToShardEvent");
  const e = r.value.SubscribeToShardEvent;
  for (const rec of e.Records) out.resumed_data.push(text(rec.Data));
  if (e.Records.length > 0) out.resumed_continuation_is_after = e.ContinuationSequenceNumber === after.SequenceNumber;
}
resumedAbort.abort();

await client.send(new DeregisterStreamConsumerCommand({ ConsumerARN }));
await client.send(new DeleteStreamCommand({ StreamName, EnforceConsumerDeletion: true }));
out.delete_with_consumer = true;
const gone = await waitUntilStreamNotExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { StreamName });
out.delete_waiter = gone.state;
const listed = await client.send(new ListStreamsCommand({}));
out.streams_after_delete = listed.StreamNames;

client.destroy();
clearTimeout(overall);
process.stdout.write(JSON.stringify(out) + "\n");
