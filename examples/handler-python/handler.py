"""A Kinesis handler written the way one writes it for AWS Lambda.

``handler(event, context)`` decodes each record's base64 JSON payload and
reports the records it could not process as ``batchItemFailures`` (enable
ReportBatchItemFailures / reportBatchItemFailures). A record whose JSON has
``"fail": true`` is reported as failed; so is one that is not JSON. Every
other record is "processed": appended as one JSON line to the file named by
$HANDLED_LOG (when set), standing in for whatever a real handler writes to.

Deployed to Lambda, only ``handler`` is used. Under runnel, run the file
itself as a command handler (``python3 handler.py``): the runner at the end
reads one event per line on stdin and writes one response per line on
stdout.
"""

import base64
import json
import os


def handler(event, context):
    failures = []
    for record in event["Records"]:
        seq = record["kinesis"]["sequenceNumber"]
        try:
            payload = json.loads(base64.b64decode(record["kinesis"]["data"]))
        except ValueError as err:
            print(f"record {record['eventID']}: payload is not JSON: {err}")
            failures.append({"itemIdentifier": seq})
            continue
        if isinstance(payload, dict) and payload.get("fail") is True:
            print(f"record {record['eventID']}: asked to fail")
            failures.append({"itemIdentifier": seq})
            continue
        path = os.environ.get("HANDLED_LOG")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps({
                    "shardId": record["eventID"].split(":", 1)[0],
                    "sequenceNumber": seq,
                    "partitionKey": record["kinesis"]["partitionKey"],
                    "data": payload,
                }) + "\n")
    return {"batchItemFailures": failures}


# The runner: runnel's command-handler line protocol around handler().

class _Context:
    """The parts of Lambda's context object a handler commonly uses."""

    def __init__(self, request_id, deadline):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "handler")
        self.function_version = "$LATEST"
        self.invoked_function_arn = ""
        self.memory_limit_in_mb = 0
        self.aws_request_id = request_id
        self.log_group_name = ""
        self.log_stream_name = ""
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        import time
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _run():
    import sys
    import time
    import traceback
    import uuid

    out = sys.stdout
    sys.stdout = sys.stderr  # print() in the handler must not corrupt responses
    timeout = int(os.environ.get("RUNNEL_HANDLER_TIMEOUT_MS", "60000")) / 1000
    for line in sys.stdin:
        if not line.strip():
            continue
        ctx = _Context(str(uuid.uuid4()), time.monotonic() + timeout)
        try:
            result = handler(json.loads(line), ctx)
        except Exception as err:  # a function error: the whole batch fails
            result = {
                "errorType": type(err).__name__,
                "errorMessage": str(err),
                "stackTrace": traceback.format_exc().splitlines(),
            }
        out.write(json.dumps(result, separators=(",", ":")) + "\n")
        out.flush()


if __name__ == "__main__":
    _run()
