// A Lambda function (Node.js, async) that fails the whole batch when a
// record's JSON has "fail": true, and otherwise appends each record as a
// JSON line to $HANDLED_LOG.
'use strict';

const fs = require('fs');

exports.handler = async (event) => {
  const records = event.Records.map((r) => ({ r, data: JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8')) }));
  const poison = records.find((x) => x.data.fail === true);
  if (poison) {
    throw new Error(`poison record ${poison.r.kinesis.sequenceNumber}`);
  }
  const lines = records.map(({ r, data }) => JSON.stringify({
    shardId: r.eventID.split(':')[0],
    sequenceNumber: r.kinesis.sequenceNumber,
    partitionKey: r.kinesis.partitionKey,
    data,
  }) + '\n');
  fs.appendFileSync(process.env.HANDLED_LOG, lines.join(''));
};
