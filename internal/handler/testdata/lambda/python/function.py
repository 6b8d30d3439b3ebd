"""Functions written for AWS Lambda's Python runtime, for the lambda
handler tests. Each record's data is JSON."""

import base64
import json
import os


def decode(record):
    return json.loads(base64.b64decode(record["kinesis"]["data"]))


def context_seen(event, context):
    print("records", len(event["Records"]))
    return {
        "seen": {
            "functionName": context.function_name,
            "invokedFunctionArn": context.invoked_function_arn,
            "memoryLimitInMB": context.memory_limit_in_mb,
            "logGroupName": context.log_group_name,
            "awsRequestId": context.aws_request_id,
            "remaining": context.get_remaining_time_in_millis(),
            "greeting": os.environ.get("GREETING"),
        }
    }


def boom(event, context):
    raise ValueError("bad reading %d" % len(event["Records"]))


def total(event, context):
    return sum(decode(r).get("n", 0) for r in event["Records"])
