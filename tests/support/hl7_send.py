"""An independent HL7 v2 sender for the tests: the python `hl7` package's MLLP client sends each
message of a JSON list over one connection, parses each ACK with the same package, and prints
one JSON list: [{"msa": "AA", "refers": "<MSH-10>", "err": "<ERR-2>", "raw": "<ACK>"}].

usage: hl7_send.py HOST PORT MESSAGES.json [encoding]

With MARK_AFTER=N in the environment it prints a line `MARK` after the N-th ACK (the test kills
the server then); a connection that breaks ends the sending, and what was acknowledged so far
is printed.
"""
import os
import json
import sys

import hl7
from hl7.client import MLLPClient

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
encoding = sys.argv[4] if len(sys.argv) > 4 else "utf-8"
with open(path, encoding="utf-8") as f:
    messages = json.load(f)
mark_after = int(os.environ.get("MARK_AFTER", "0"))
out = []
with MLLPClient(host, port, encoding=encoding) as client:
    for i, m in enumerate(messages):
        try:
            raw = client.send_message(m)
        except OSError:
            break
        if not raw:
            break
        text = raw.strip(b"\x0b\x1c\r\n").decode(encoding)
        ack = hl7.parse(text)
        msa = ack.segment("MSA")
        err = ""
        try:
            err = str(ack.segment("ERR")[2])
        except KeyError:
            pass
        out.append({"msa": str(msa[1]), "refers": str(msa[2]), "err": err, "raw": text})
        if mark_after and i + 1 == mark_after:
            print("MARK", flush=True)
print(json.dumps(out, ensure_ascii=False))
