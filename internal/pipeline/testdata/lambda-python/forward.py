"""A Lambda function (Python, boto3) that puts each record's data, upper
cased, into the stream named by TARGET_STREAM. Its Kinesis client is made
once, at import, as Lambda functions do; the endpoint, region and
credentials come from the environment."""

import base64
import os

import boto3

kinesis = boto3.client("kinesis")


def handler(event, context):
    records = [
        {
            "Data": base64.b64decode(r["kinesis"]["data"]).upper(),
            "PartitionKey": r["kinesis"]["partitionKey"],
        }
        for r in event["Records"]
    ]
    out = kinesis.put_records(StreamName=os.environ["TARGET_STREAM"], Records=records)
    if out["FailedRecordCount"]:
        raise RuntimeError("%d records not put" % out["FailedRecordCount"])
    print("forwarded", len(records))
    return {"batchItemFailures": []}
