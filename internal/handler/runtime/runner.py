"""runnel's Python runner for Lambda functions as written.

runnel starts it as ``python3 runner.py DIR MODULE.FUNCTION``; it imports the
function's module from DIR unchanged, then reads one event per line from file
descriptor 3 and writes one response per line to file descriptor 4: the
function's return value as JSON, or {"errorType", "errorMessage",
"stackTrace"} when it raises. The function's stdout and stderr are runnel's
log. Invocations run one at a time, as in a Lambda execution environment.
"""

import importlib
import json
import os
import sys
import time
import traceback
import uuid

RESPONSE_FD = 4


class LambdaContext:
    """The context object Lambda passes to a Python handler."""

    def __init__(self, request_id, deadline):
        env = os.environ
        name = env.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        region = env.get("AWS_REGION", "us-east-1")
        self.function_name = name
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = "arn:aws:lambda:%s:000000000000:function:%s" % (region, name)
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/" + name)
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def error_response(exc, tb=True):
    resp = {"errorMessage": str(exc), "errorType": type(exc).__name__}
    if tb:
        resp["stackTrace"] = traceback.format_tb(exc.__traceback__)
    return resp


def load_handler(directory, handler):
    module_name, _, fn_name = handler.rpartition(".")
    if not module_name or not fn_name:
        raise ValueError("handler %r: want MODULE.FUNCTION, such as handler.handler" % handler)
    sys.path.insert(0, directory)
    module = importlib.import_module(module_name.replace("/", "."))
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise AttributeError("%s is undefined or not a function in module %s" % (fn_name, module_name))
    return fn


def main():
    directory, handler = sys.argv[1], sys.argv[2]
    os.chdir(directory)
    timeout = int(os.environ.get("RUNNEL_HANDLER_TIMEOUT_MS", "60000")) / 1000.0
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    events = open(3, "rb")
    out = open(RESPONSE_FD, "wb", buffering=0)
    init_error = None
    try:
        fn = load_handler(directory, handler)
    except Exception as exc:  # reported with every invocation
        init_error = exc
        traceback.print_exc()
    for line in events:
        if not line.strip():
            continue
        if init_error is not None:
            resp = error_response(init_error, tb=False)
        else:
            request_id = str(uuid.uuid4())
            started = time.monotonic()
            print("START RequestId: %s Version: %s" % (request_id, version), flush=True)
            try:
                event = json.loads(line)
                resp = fn(event, LambdaContext(request_id, started + timeout))
                json.dumps(resp)  # a result JSON cannot carry is an error
            except Exception as exc:
                resp = error_response(exc)
                print("[ERROR] %s: %s" % (type(exc).__name__, exc), file=sys.stderr, flush=True)
            ms = (time.monotonic() - started) * 1000
            print("END RequestId: %s" % request_id, flush=True)
            print("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %s MB"
                  % (request_id, ms, int(ms) + 1, memory), flush=True)
        out.write(json.dumps(resp).encode() + b"\n")


if __name__ == "__main__":
    main()
