// runnel's Node.js runner for Lambda functions as written. runnel starts it
// as `node runner.js DIR MODULE.FUNCTION`; it loads the function's module
// from DIR unchanged, then reads one event per line from file descriptor 3
// and writes one response per line to file descriptor 4: the function's
// result as JSON, or {"errorType", "errorMessage", "trace"} when it fails.
// The function's stdout and stderr are runnel's log. Invocations run one at
// a time, as in a Lambda execution environment.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const readline = require('readline');
const crypto = require('crypto');
const url = require('url');

const [dir, handlerName] = process.argv.slice(2);
const env = process.env;
const timeoutMs = Number(env.RUNNEL_HANDLER_TIMEOUT_MS || 60000);
const RESPONSE_FD = 4;

function send(value) {
  let line;
  try {
    line = JSON.stringify(value === undefined ? null : value);
  } catch (err) {
    line = JSON.stringify(errorResponse(err));
  }
  if (line === undefined) line = 'null';
  fs.writeSync(RESPONSE_FD, line + '\n');
}

function errorResponse(err) {
  if (err instanceof Error) {
    return {
      errorType: err.name || 'Error',
      errorMessage: err.message,
      trace: String(err.stack || '').split('\n'),
    };
  }
  let message;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err);
  } catch (e) {
    message = String(err);
  }
  return { errorType: typeof err === 'string' ? 'string' : 'object', errorMessage: message };
}

// The AWS SDK for JavaScript v2 (npm aws-sdk) does not read
// AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL; when the function can
// load it, give it those endpoints before the function does.
function configureSDKv2() {
  let AWS;
  try {
    AWS = require(require.resolve('aws-sdk', { paths: [dir] }));
  } catch (e) {
    return;
  }
  const update = {};
  if (env.AWS_ENDPOINT_URL) update.endpoint = env.AWS_ENDPOINT_URL;
  for (const [key, value] of Object.entries(env)) {
    const m = /^AWS_ENDPOINT_URL_(.+)$/.exec(key);
    if (!m || !value) continue;
    const service = m[1].toLowerCase().replace(/_/g, '');
    update[service] = Object.assign({}, update[service], { endpoint: value });
  }
  if (update.endpoint || update.s3) {
    update.s3 = Object.assign({}, update.s3, { s3ForcePathStyle: true });
  }
  if (Object.keys(update).length > 0) AWS.config.update(update);
}

async function loadHandler() {
  const dot = handlerName.lastIndexOf('.');
  if (dot < 1 || dot === handlerName.length - 1) {
    throw Object.assign(new Error(`handler ${JSON.stringify(handlerName)}: want MODULE.FUNCTION, such as index.handler`), { name: 'Runtime.MalformedHandlerName' });
  }
  const modulePath = path.resolve(dir, handlerName.slice(0, dot));
  const fnName = handlerName.slice(dot + 1);
  let file;
  for (const ext of ['.js', '.mjs', '.cjs', '']) {
    if (fs.existsSync(modulePath + ext) && fs.statSync(modulePath + ext).isFile()) {
      file = modulePath + ext;
      break;
    }
  }
  if (!file) {
    throw Object.assign(new Error(`Cannot find module '${handlerName.slice(0, dot)}' in ${dir}`), { name: 'Runtime.ImportModuleError' });
  }
  let mod;
  try {
    try {
      mod = require(file);
    } catch (err) {
      if (err.code !== 'ERR_REQUIRE_ESM') throw err;
      mod = await import(url.pathToFileURL(file).href);
    }
  } catch (err) {
    // Named as Lambda names a function that cannot be loaded.
    if (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND') err.name = 'Runtime.ImportModuleError';
    else if (err instanceof SyntaxError) err.name = 'Runtime.UserCodeSyntaxError';
    throw err;
  }
  const fn = mod[fnName] !== undefined ? mod[fnName] : mod.default && mod.default[fnName];
  if (typeof fn !== 'function') {
    throw Object.assign(new Error(`${handlerName} is undefined or not exported`), { name: 'Runtime.HandlerNotFound' });
  }
  return fn;
}

// Lambda's console: each line carries the time, the request id and the level.
let currentRequestId = '';
for (const [name, level] of [['log', 'INFO'], ['info', 'INFO'], ['warn', 'WARN'], ['error', 'ERROR'], ['debug', 'DEBUG'], ['trace', 'TRACE']]) {
  const original = console[name].bind(console);
  console[name] = (...args) => original(`${new Date().toISOString()}\t${currentRequestId || 'undefined'}\t${level}\t`, ...args);
}

function newContext(requestId, deadline, settle) {
  const name = env.AWS_LAMBDA_FUNCTION_NAME || 'function';
  const region = env.AWS_REGION || 'us-east-1';
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: name,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:000000000000:function:${name}`,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '128',
    awsRequestId: requestId,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME || `/aws/lambda/${name}`,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME || '',
    identity: undefined,
    clientContext: undefined,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    succeed: (result) => settle(null, result),
    fail: (err) => settle(err === undefined || err === null ? new Error('handled') : err),
    done: (err, result) => settle(err, result),
  };
}

// kinds counts resources by kind.
function kinds(list) {
  const m = new Map();
  for (const k of list) m.set(k, (m.get(k) || 0) + 1);
  return m;
}

// whenQuiet calls done once the work an invocation started is over: no
// more active resources (timers, sockets, file requests) of any kind than
// baseline had, as Lambda answers a handler that returns nothing once the
// event loop is empty; or at the deadline.
function whenQuiet(baseline, deadline, done) {
  const before = kinds(baseline);
  const check = (ownTimer) => {
    const now = kinds(process.getActiveResourcesInfo());
    if (ownTimer) now.set('Timeout', (now.get('Timeout') || 1) - 1);
    let busy = false;
    for (const [k, n] of now) {
      if (n > (before.get(k) || 0)) busy = true;
    }
    if (!busy || Date.now() >= deadline) {
      done();
      return;
    }
    setTimeout(() => check(true), 5);
  };
  setImmediate(() => check(false));
}

function invoke(fn, event) {
  const requestId = crypto.randomUUID();
  const started = process.hrtime.bigint();
  const deadline = Date.now() + timeoutMs;
  currentRequestId = requestId;
  process.stdout.write(`START RequestId: ${requestId} Version: ${env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST'}\n`);
  return new Promise((resolve) => {
    let settled = false;
    const settle = (err, result) => {
      if (settled) return;
      settled = true;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      process.stdout.write(`END RequestId: ${requestId}\n`);
      process.stdout.write(`REPORT RequestId: ${requestId}\tDuration: ${ms.toFixed(2)} ms\tBilled Duration: ${Math.ceil(ms)} ms\t` +
        `Memory Size: ${env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '128'} MB\tMax Memory Used: ${Math.round(process.memoryUsage.rss() / 1048576)} MB\n`);
      currentRequestId = '';
      resolve(err !== null && err !== undefined ? errorResponse(err) : result);
    };
    const context = newContext(requestId, deadline, settle);
    const baseline = process.getActiveResourcesInfo();
    // The callback answers once the event loop is empty, unless the
    // function set context.callbackWaitsForEmptyEventLoop = false, as
    // Lambda does; the first answer counts.
    let called = false;
    const callback = (err, result) => {
      if (called) return;
      called = true;
      if (context.callbackWaitsForEmptyEventLoop === false) settle(err, result);
      else whenQuiet(baseline, deadline, () => settle(err, result));
    };
    try {
      const returned = fn(event, context, callback);
      if (returned && typeof returned.then === 'function') {
        returned.then((result) => settle(null, result), (err) => settle(err === undefined || err === null ? new Error('rejected') : err));
      } else if (fn.length < 3 && returned !== undefined) {
        // Neither a promise nor a callback: a synchronous result.
        settle(null, returned);
      } else if (fn.length < 3) {
        // A synchronous handler that returns nothing: null, once the
        // work it started is done.
        whenQuiet(baseline, deadline, () => settle(null, null));
      }
    } catch (err) {
      settle(err);
    }
  });
}

async function main() {
  // Node makes the stdio streams when first used: make them now, so the
  // baseline of whenQuiet has them.
  void process.stdout;
  void process.stderr;
  configureSDKv2();
  let fn;
  let initError;
  try {
    fn = await loadHandler();
  } catch (err) {
    initError = err;
    console.error(`${initError.name || 'Error'}: ${initError.message}`);
  }
  const events = readline.createInterface({ input: new net.Socket({ fd: 3, readable: true, writable: false }), crlfDelay: Infinity });
  // One invocation at a time: lines wait in the queue until the previous
  // response is written.
  const queue = [];
  let busy = false;
  const next = async () => {
    if (busy) return;
    busy = true;
    while (queue.length > 0) {
      const line = queue.shift();
      if (!line.trim()) continue;
      if (initError) {
        send(errorResponse(initError));
        continue;
      }
      let event;
      try {
        event = JSON.parse(line);
      } catch (err) {
        send(errorResponse(err));
        continue;
      }
      send(await invoke(fn, event));
    }
    busy = false;
  };
  events.on('line', (line) => { queue.push(line); next(); });
  events.on('close', () => process.exit(0));
  process.on('unhandledRejection', (err) => {
    console.error('Unhandled Promise Rejection', err);
  });
}

main();
