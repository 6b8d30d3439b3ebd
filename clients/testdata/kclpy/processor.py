"""An amazon-kclpy record processor, run by the KCL's MultiLangDaemon.

Standard input and output carry the MultiLangDaemon's protocol, so what the
scenario test reads is appended to the file $RUNNEL_KCLPY_OUT, one line per
event, in the format of the Java consumer (testdata/java/.../Consume.java):
"INIT worker shard", "REC worker shard sequence-number sub-sequence-number
latency-ms data", "CKPT worker shard sequence-number", "END worker shard".
It checkpoints after every batch and at each shard's end.
"""

import base64
import os
import sys
import time

from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor

WORKER = os.environ.get("RUNNEL_KCLPY_WORKER", "py")


def emit(line):
    with open(os.environ["RUNNEL_KCLPY_OUT"], "a", encoding="utf-8") as f:
        f.write(line + "\n")


class RecordProcessor(processor.RecordProcessorBase):
    def __init__(self):
        self.shard = None

    def initialize(self, initialize_input):
        self.shard = initialize_input.shard_id
        emit("INIT %s %s" % (WORKER, self.shard))

    def process_records(self, process_records_input):
        now = int(time.time() * 1000)
        last = None
        for r in process_records_input.records:
            data = base64.b64decode(r.data).decode("utf-8")
            try:
                latency = now - int(data.rsplit(" ", 1)[-1])
            except ValueError:
                latency = -1
            emit("REC %s %s %s %d %d %s" % (WORKER, self.shard, r.sequence_number, r.sub_sequence_number or 0, latency, data))
            last = r.sequence_number
        if last is not None:
            process_records_input.checkpointer.checkpoint()
            emit("CKPT %s %s %s" % (WORKER, self.shard, last))

    def lease_lost(self, lease_lost_input):
        emit("LOST %s %s" % (WORKER, self.shard))

    def shard_ended(self, shard_ended_input):
        shard_ended_input.checkpointer.checkpoint()
        emit("END %s %s" % (WORKER, self.shard))

    def shutdown_requested(self, shutdown_requested_input):
        shutdown_requested_input.checkpointer.checkpoint()
        emit("SHUTDOWN %s %s" % (WORKER, self.shard))


if __name__ == "__main__":
    kcl.KCLProcess(RecordProcessor()).run()
