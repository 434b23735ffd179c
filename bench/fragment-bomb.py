#!/usr/bin/env python3
"""Sends fragment bombs to a running giftdrop server and prints the server's
CPU time per request (from /proc/<pid>/stat, so the server must run on this
machine), the document's size and the answer.

    bench/fragment-bomb.py http://127.0.0.1:8000/graphql <server pid> 18 20 22 24
    bench/fragment-bomb.py --pad 926 --repeat 200 <url> <pid> 24

A bomb of N levels is N fragments that each spread the one before twice:
2^N `platform { currency }` selections once expanded."""
import argparse
import json
import os
import urllib.request


def bomb(levels, pad):
    parts = ["query{...F%d}" % levels, "fragment F0 on Query{platform{currency}}"]
    for i in range(1, levels + 1):
        parts.append("fragment F%d on Query{...F%d ...F%d}" % (i, i - 1, i - 1))
    query = " ".join(parts)
    return query + " " * max(0, pad - len(query))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("pid", type=int)
    parser.add_argument("levels", type=int, nargs="+")
    parser.add_argument("--pad", type=int, default=0, help="pad the document to this many bytes")
    parser.add_argument("--repeat", type=int, default=1, help="requests per level")
    args = parser.parse_args()
    for levels in args.levels:
        query = bomb(levels, args.pad)
        body = json.dumps({"query": query}).encode()
        request = urllib.request.Request(args.url, body, {"content-type": "application/json"})
        before = cpu_seconds(args.pid)
        for _ in range(args.repeat):
            answer = json.load(urllib.request.urlopen(request, timeout=3600))
        spent = (cpu_seconds(args.pid) - before) / args.repeat
        error = answer.get("errors", [{}])[0]
        code = error.get("extensions", {}).get("code")
        print(f"levels={levels} bytes={len(query)} cpu_per_request={spent * 1000:.1f}ms "
              f"code={code} message={error.get('message')!r}")


if __name__ == "__main__":
    main()
