#!/usr/bin/env python3
"""Trims a Chromium NetLog to what harness/src/netlog.rs reads, for checked-in test fixtures.

Usage: scripts/trim-netlog.py NETLOG.json[.gz] OUT.json

Keeps the constants the parser needs and, in their original order, only the events it looks
at, with only the parameters it reads (no certificates, bytes or URLs of other hosts).
"""
import gzip
import json
import sys

KEEP = {
    "SOCKET_ALIVE": ["source_dependency"],
    "TCP_CONNECT": ["local_address", "remote_address"],
    "SSL_CONNECT": ["net_error"],
    "SSL_ALERT_SENT": ["bytes"],
    "SOCKET_POOL_CONNECT_JOB_CREATED": ["backup_job"],
    "TCP_CONNECT_JOB_CONNECTOR_CONNECT_START": ["connector", "source_dependency"],
    "SOCKET_POOL_CONNECTING_N_SOCKETS": ["num_sockets"],
    "HTTP_STREAM_JOB": ["source_dependency"],
    "SOCKET_POOL_BOUND_TO_CONNECT_JOB": ["source_dependency"],
    "SOCKET_POOL_BOUND_TO_SOCKET": ["source_dependency"],
    "HTTP_STREAM_JOB_CONTROLLER": ["is_preconnect", "allowed_bad_certs", "url"],
    "SOCKET_POOL": [],
    "CONNECT_JOB": [],
}

src, out = sys.argv[1], sys.argv[2]
opener = gzip.open if src.endswith(".gz") else open
with opener(src, "rt") as f:
    log = json.load(f)
c = log["constants"]
names = {v: k for k, v in c["logEventTypes"].items()}
keep_ids = {c["logEventTypes"][k] for k in KEEP if k in c["logEventTypes"]}
events = []
for e in log["events"]:
    if e["type"] not in keep_ids:
        continue
    params = e.get("params") or {}
    wanted = {k: v for k, v in params.items() if k in KEEP[names[e["type"]]]}
    if "url" in wanted and "localhost" not in wanted["url"] and "127.0.0.1" not in wanted["url"]:
        wanted["url"] = "https://elsewhere.invalid/"
    e = {k: v for k, v in e.items() if k != "params"}
    if wanted:
        e["params"] = wanted
    events.append(e)
constants = {
    "logEventTypes": {k: v for k, v in c["logEventTypes"].items() if k in KEEP},
    "logSourceType": c["logSourceType"],
    "clientInfo": {"name": c["clientInfo"]["name"], "version": c["clientInfo"]["version"]},
    "activeFieldTrialGroups": c.get("activeFieldTrialGroups", []),
    "timeTickOffset": c["timeTickOffset"],
    "logFormatVersion": c.get("logFormatVersion"),
}
with open(out, "w") as f:
    f.write('{"constants": ' + json.dumps(constants) + ',\n"events": [\n')
    f.write(",\n".join(json.dumps(e, separators=(",", ":")) for e in events))
    f.write("\n]}\n")
print(f"{out}: {len(events)} events")
