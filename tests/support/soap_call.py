"""An independent SOAP client for the tests: python `zeep` (installed by scripts/test) reads
clinicflow's published WSDL and calls the operations a HIS would, in the order of a JSON list;
prints one JSON list of results: {"ok": {...response fields...}} or {"fault": {"message", "code",
"field"}}.

usage: soap_call.py BASE_URL TOKEN CALLS.json NOW_MS MINUTE_MS

Each call: {"op": "Register", "binding": "soap12" (optional), "args": {...}}; an argument whose
name ends in "At", "Start" or "End" is "minutes ago" (a number of MINUTE_MS before NOW_MS, the
tests' pinned instant: never the machine's clock) turned into the hospital's wall-clock time
(Asia/Shanghai, no zone), as a HIS would send it.
"""
import datetime
import json
import sys
from zoneinfo import ZoneInfo

import requests
from zeep import Client
from zeep.exceptions import Fault
from zeep.helpers import serialize_object
from zeep.transports import Transport

base, token, path = sys.argv[1], sys.argv[2], sys.argv[3]
now_ms, minute_ms = int(sys.argv[4]), int(sys.argv[5])
with open(path, encoding="utf-8") as f:
    calls = json.load(f)

session = requests.Session()
session.auth = ("his", token)  # Basic, the token as the password
client = Client(base + "/soap/his?wsdl", transport=Transport(session=session))
services = {
    "soap11": client.service,
    "soap12": client.bind("ClinicflowHis", "ClinicflowHisSoap12"),
}
now = datetime.datetime.fromtimestamp(now_ms / 1000, ZoneInfo("Asia/Shanghai")).replace(tzinfo=None, microsecond=0)

out = []
for call in calls:
    args = {}
    for k, v in call["args"].items():
        if k.endswith(("At", "Start", "End")) and isinstance(v, (int, float)):
            v = now - datetime.timedelta(milliseconds=v * minute_ms)
        args[k] = v
    service = services[call.get("binding", "soap11")]
    try:
        r = getattr(service, call["op"])(**args)
        r = serialize_object(r)
        # zeep unwraps a response of one element (CancelResponse: its result).
        out.append({"ok": dict(r) if isinstance(r, dict) else {"result": r}})
    except Fault as e:
        detail = {}
        if e.detail is not None:
            for el in e.detail.iter():
                tag = el.tag.split("}")[-1]
                if tag in ("code", "field"):
                    detail[tag] = el.text
        out.append({"fault": {"message": e.message, "code": str(e.code), **detail}})
print(json.dumps(out, ensure_ascii=False))
