// Functions written for AWS Lambda's Node.js runtime, in each of its
// styles, for the lambda handler tests. Each record's data is JSON.
'use strict';

const decode = (record) => JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8'));

// async: reports records whose data has "fail": true, and what it saw of
// its context and environment.
exports.handler = async (event, context) => {
  console.log('records', event.Records.length);
  process.stdout.write('{"batchItemFailures":[]}\n'); // printed, not a response
  const failures = event.Records.filter((r) => decode(r).fail === true)
    .map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber }));
  return {
    batchItemFailures: failures,
    seen: {
      functionName: context.functionName,
      functionVersion: context.functionVersion,
      invokedFunctionArn: context.invokedFunctionArn,
      memoryLimitInMB: context.memoryLimitInMB,
      logGroupName: context.logGroupName,
      awsRequestId: context.awsRequestId,
      remaining: context.getRemainingTimeInMillis(),
      greeting: process.env.GREETING,
      region: process.env.AWS_REGION,
      cwd: process.cwd(),
    },
  };
};

// callback style, answering after a timer, with a string.
exports.callback = function (event, context, callback) {
  setTimeout(() => callback(null, `Delivered ${event.Records.length} records`), 5);
};

// callback style, failing.
exports.callbackError = function (event, context, callback) {
  setImmediate(() => callback(new RangeError('reading out of range')));
};

// the oldest style: context.succeed and context.fail.
exports.legacy = function (event, context) {
  const n = event.Records.map(decode).reduce((sum, d) => sum + (d.n || 0), 0);
  if (n < 0) {
    context.fail(new Error('negative sum'));
    return;
  }
  setTimeout(() => context.succeed({ sum: n }), 1);
};

// async, throwing.
exports.boom = async () => {
  console.error('about to fail');
  throw new TypeError('bad reading');
};

// never answers.
exports.hang = () => new Promise(() => {});

// A synchronous handler that returns nothing: Lambda answers null.
exports.syncNothing = (event) => {
  console.log(`sync records ${event.Records.length}`);
};

// A synchronous handler that returns nothing and leaves a timer: Lambda
// answers null once the timer has run (the event loop is empty).
exports.syncLater = (event) => {
  setTimeout(() => console.log(`written later ${event.Records.length}`), 50);
};

// callback style, leaving a timer that outlives the answer: Lambda answers
// once the timer has run, unless the event says not to wait for it.
exports.callbackLater = function (event, context, callback) {
  const { wait, ms } = decode(event.Records[0]);
  context.callbackWaitsForEmptyEventLoop = wait;
  setTimeout(() => console.log('written after the callback'), ms);
  callback(null, 'answered');
};
