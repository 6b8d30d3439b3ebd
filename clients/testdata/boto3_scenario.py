"""Drives runnel serve with boto3: create, put, get, settings, keys, delete.

Usage: boto3_scenario.py ENDPOINT
Keys come from the environment: ADMIN_ID/ADMIN_SECRET (all actions) and
DEVICE_ID/DEVICE_SECRET (put into "clicks" only). Prints one JSON object.
"""
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(endpoint, key_id, secret):
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def error_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def main():
    endpoint = sys.argv[1]
    admin = client(endpoint, os.environ["ADMIN_ID"], os.environ["ADMIN_SECRET"])
    device = client(endpoint, os.environ["DEVICE_ID"], os.environ["DEVICE_SECRET"])
    wrong = client(endpoint, os.environ["ADMIN_ID"], "not-the-secret")
    out = {}

    admin.create_stream(StreamName="clicks", ShardCount=2)
    admin.get_waiter("stream_exists").wait(StreamName="clicks", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    summary = admin.describe_stream_summary(StreamName="clicks")["StreamDescriptionSummary"]
    out["status"] = summary["StreamStatus"]
    out["open_shards"] = summary["OpenShardCount"]

    put = admin.put_record(StreamName="clicks", PartitionKey="user-1", Data=b"\x00first")
    out["put_shard"] = put["ShardId"]
    batch = admin.put_records(
        StreamName="clicks",
        Records=[{"PartitionKey": "user-1", "Data": b"second"}, {"PartitionKey": "user-1", "Data": b"third"}],
    )
    out["batch_failed"] = batch["FailedRecordCount"]
    device_put = device.put_record(StreamName="clicks", PartitionKey="user-1", Data=b"from-device")
    out["device_put_shard"] = device_put["ShardId"]

    it = admin.get_shard_iterator(StreamName="clicks", ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = admin.get_records(ShardIterator=it, Limit=100)["Records"]
    out["data"] = [r["Data"].decode("latin-1") for r in records]
    out["arrival_is_datetime"] = all(hasattr(r["ApproximateArrivalTimestamp"], "year") for r in records)

    admin.start_stream_encryption(StreamName="clicks", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    admin.enable_enhanced_monitoring(StreamName="clicks", ShardLevelMetrics=["ALL"])
    summary = admin.describe_stream_summary(StreamName="clicks")["StreamDescriptionSummary"]
    out["encryption"] = summary["EncryptionType"]
    out["metrics"] = len(summary["EnhancedMonitoring"][0]["ShardLevelMetrics"])
    out["shard_limit"] = admin.describe_limits()["ShardLimit"]

    out["device_get_iterator"] = error_code(
        lambda: device.get_shard_iterator(StreamName="clicks", ShardId=put["ShardId"], ShardIteratorType="LATEST"))
    out["device_delete"] = error_code(lambda: device.delete_stream(StreamName="clicks"))
    out["wrong_secret"] = error_code(lambda: wrong.list_streams())

    admin.delete_stream(StreamName="clicks")
    admin.get_waiter("stream_not_exists").wait(StreamName="clicks", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    out["streams_after_delete"] = admin.list_streams()["StreamNames"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
