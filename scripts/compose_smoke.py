#!/usr/bin/env python3
"""The compose smoke test, without a Docker engine (scripts/compose-smoke).

Runs the app services of docker-compose.yml (those built from the
Dockerfile) as plain processes of the giftdrop binary, each with the
command and the environment that compose would give its container: the
image's ENV from the Dockerfile, overlaid with the service's `environment`
(YAML anchors and aliases resolved, `${VAR:-default}` and friends
interpolated from the invoking environment as compose does), and nothing
else from the invoking shell. The one-shot services (those others wait for
with `service_completed_successfully`) run first and must exit 0; then the
long-running ones start together and must pass their compose health check.
Through the API it then credits a sandbox top-up and runs an event
SCHEDULED -> LIVE -> ENDED, which only the worker's event clock can do.

The image's paths (its WORKDIR, /app) become a temporary directory: that is
the only liberty taken with the environment. Postgres, Redis and any other
image service are the local ones, their compose hostnames resolving to
127.0.0.1 (the wrapper script sees to it).

    scripts/compose_smoke.py hosts        # the image services' hostnames
    scripts/compose_smoke.py run BINARY   # the smoke test itself
"""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PASSWORD = "smoke-test-password"

# ------------------------------------------------------------------ compose


# `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
# `${VAR:?error}`, `${VAR?error}`, `${VAR:+replacement}`, `${VAR+replacement}`.
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})"
)


def interpolate(value, env):
    """`value` with compose's variable substitution from `env`."""

    def substitute(match):
        if match["escaped"]:
            return "$"
        name = match["bare"] or match["name"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in ("-", ":-"):
            return arg if missing else current
        if op in ("?", ":?"):
            if missing:
                sys.exit(f"compose: required variable {name} is missing: {arg}")
            return current
        if op in ("+", ":+"):
            return "" if missing else arg
        if current is None:
            print(f"compose: {name} is not set, substituting an empty string", file=sys.stderr)
        return current or ""

    return INTERPOLATION.sub(substitute, value)


def compose_env(service, env):
    """The service's `environment` section as strings, interpolated."""
    section = service.get("environment") or {}
    if isinstance(section, list):
        section = dict(item.split("=", 1) if "=" in item else (item, None) for item in section)
    result = {}
    for key, value in section.items():
        if value is None:  # `KEY:` alone passes the invoking shell's value, if any
            if key in env:
                result[key] = env[key]
            continue
        if isinstance(value, bool):
            sys.exit(f"compose: {key} is a YAML boolean; quote it")
        result[key] = interpolate(str(value), env)
    return result


def load_compose():
    """docker-compose.yml as data (the YAML loader resolves `&env` / `*env`)."""
    with open(COMPOSE) as file:
        return yaml.safe_load(file)


def image_services(compose):
    """Names of the services that run a ready-made image (Postgres, Redis...)."""
    return [name for name, service in compose["services"].items() if "build" not in service]


def app_services(compose):
    """The services built from our Dockerfile: (one-shot, long-running) names."""
    services = compose["services"]
    built = [name for name, service in services.items() if "build" in service]
    one_shot = {
        dependency
        for service in services.values()
        for dependency, condition in dependencies(service).items()
        if condition == "service_completed_successfully"
    }
    return [n for n in built if n in one_shot], [n for n in built if n not in one_shot]


def dependencies(service):
    """`depends_on` as {name: condition}, in either of its two forms."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


# --------------------------------------------------------------- Dockerfile


def image():
    """The runtime stage's ENV, WORKDIR and ENTRYPOINT from the Dockerfile."""
    stage = DOCKERFILE.read_text().split("\nFROM ")[-1]
    lines = re.sub(r"\\\n", " ", stage).splitlines()
    env, workdir, entrypoint = {}, "/", []
    for line in lines:
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "ENV":
            words = shlex.split(rest)
            if words and "=" not in words[0]:  # the old `ENV KEY value` form
                env[words[0]] = " ".join(words[1:])
            else:
                env.update(word.split("=", 1) for word in words)
        elif instruction == "WORKDIR":
            workdir = rest.strip()
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(rest)
    if entrypoint != ["giftdrop"]:
        sys.exit(f"Dockerfile: expected ENTRYPOINT [\"giftdrop\"], found {entrypoint}")
    return env, workdir


# ---------------------------------------------------------------- processes


class Service:
    """One compose service run as a process of the giftdrop binary."""

    def __init__(self, name, spec, binary, env, root):
        self.name = name
        self.spec = spec
        self.env = env
        self.log_path = root / f"{name}.log"
        self.command = [binary, *spec.get("command", [])]
        self.cwd = root
        self.process = None

    def start(self):
        print(f"==> {self.name}: giftdrop {' '.join(self.command[1:])}", flush=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout):
        """SIGTERM, as `docker compose stop`; the exit code (None if it hung)."""
        if not self.alive():
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None

    def log_tail(self, lines=40):
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"    {self.name} | {line}" for line in text[-lines:])

    def healthcheck(self):
        """The service's compose health check, run as compose runs it."""
        check = self.spec.get("healthcheck") or {}
        test = check.get("test")
        if check.get("disable") or not test:
            return None
        if test[0] == "CMD":
            argv = test[1:]
        elif test[0] == "CMD-SHELL":
            argv = ["sh", "-c", test[1]]
        else:
            sys.exit(f"{self.name}: unsupported healthcheck {test}")
        env = dict(self.env, PATH=os.environ.get("PATH", "/usr/bin:/bin"))
        return subprocess.run(argv, env=env, capture_output=True).returncode == 0


def wait_for(what, check, timeout, processes=()):
    """Polls `check` until it holds; fails after `timeout` s or if a process dies."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for process in processes:
            if not process.alive():
                fail(f"{process.name} exited ({process.process.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        time.sleep(0.2)


RUNNING = []


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    for service in RUNNING:
        print(service.log_tail(), file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- the API


class Api:
    """GraphQL and sandbox calls to the running API."""

    def __init__(self, base):
        self.base = base

    def post(self, url, body=None, token=None):
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(url, data=data, method="POST")
        request.add_header("content-type", "application/json")
        if token:
            request.add_header("authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def gql(self, query, variables=None, token=None):
        """`data` of the operation; fails the test on any error."""
        status, body = self.post(f"{self.base}/graphql", {"query": query, "variables": variables or {}}, token)
        if status != 200 or body.get("errors"):
            fail(f"GraphQL {query.split('(')[0]} answered {status}: {body}")
        return body["data"]


def register(api, email, name):
    data = api.gql(
        "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }",
        {"i": {"email": email, "password": PASSWORD, "displayName": name}},
    )
    return data["register"]["token"]


def login(api, email, password):
    data = api.gql(
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        {"e": email, "p": password},
    )
    return data["login"]["token"]


def balance(api, token):
    return api.gql("{ me { wallet { balance } } }", token=token)["me"]["wallet"]["balance"]


def top_up(api, token, amount):
    """initiateTopup, then the sandbox checkout's pay URL; the wallet shows it."""
    topup = api.gql(
        "mutation($i: TopupInput!) { initiateTopup(input: $i) { checkoutUrl } }",
        {"i": {"amount": str(amount), "idempotencyKey": str(uuid.uuid4())}},
        token,
    )["initiateTopup"]
    status, body = api.post(f"{topup['checkoutUrl']}/pay")
    if status != 200:
        fail(f"the sandbox checkout answered {status}: {body}")
    credited = balance(api, token)
    if credited != str(amount):
        fail(f"the wallet shows {credited} after a top-up of {amount}")
    print(f"    top-up of {amount} credited: the wallet shows {credited}")


def card_product(api, admin, run, face_value):
    """A merchant approved by the admin, with one product; its id."""
    staff = register(api, f"smoke-shop-{run}@example.com", "Smoke Shop")
    merchant = api.gql(
        "mutation($i: RegisterMerchantInput!) { registerMerchant(input: $i) { id status } }",
        {"i": {"name": f"Smoke Shop {run}", "payoutAccount": "0123456789"}},
        staff,
    )["registerMerchant"]["id"]
    api.gql("mutation($id: ID!) { approveMerchant(id: $id) { status } }", {"id": merchant}, admin)
    product = api.gql(
        "mutation($i: CardProductInput!) { createCardProduct(input: $i) { id } }",
        {"i": {"merchantId": merchant, "name": "Gift card", "description": "Spend in store",
               "denominations": [str(face_value)], "validityDays": 365}},
        staff,
    )
    return product["createCardProduct"]["id"]


def iso(seconds_from_now):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


def event_lifecycle(api, host, product, face_value):
    """Publishes an INSTANT event starting in 5 s for 5 s; waits for LIVE, ENDED."""
    event = api.gql(
        "mutation($i: CreateEventInput!) { createEvent(input: $i) { id status } }",
        {"i": {"title": "Smoke giveaway", "description": "Like the post, win a card",
               "socialPostUrl": "https://social.example/p/1", "selection": "INSTANT",
               "winChancePercent": 50, "startsAt": iso(5), "endsAt": iso(10),
               "prizes": [{"cardProductId": product, "faceValue": str(face_value), "quantity": 1}]}},
        host,
    )["createEvent"]
    published = api.gql(
        "mutation($id: ID!, $k: String!) { publishEvent(id: $id, idempotencyKey: $k) { status } }",
        {"id": event["id"], "k": str(uuid.uuid4())},
        host,
    )["publishEvent"]
    seen = [published["status"]]
    print(f"    event {event['id']}: {seen[0]}")

    def reaches(status):
        current = api.gql("query($id: ID!) { event(id: $id) { status } }", {"id": event["id"]}, host)
        current = current["event"]["status"]
        if current != seen[-1]:
            seen.append(current)
            print(f"    event {event['id']}: {current}")
        return current == status

    wait_for("the event to go LIVE", lambda: reaches("LIVE"), 30, RUNNING)
    wait_for("the event to end", lambda: reaches("ENDED"), 30, RUNNING)
    if seen != ["SCHEDULED", "LIVE", "ENDED"]:
        fail(f"the event went {' -> '.join(seen)}")


# ---------------------------------------------------------------- main


def port_free(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def run(binary):
    compose = load_compose()
    image_env, workdir = image()
    one_shot, long_running = app_services(compose)
    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    root = Path(tempfile.mkdtemp(prefix="giftdrop-compose-smoke-"))
    print(f"compose smoke {run_id}: logs and the image's {workdir} under {root}")

    def service(name):
        spec = compose["services"][name]
        env = dict(image_env, **compose_env(spec, os.environ))
        # The image's paths live in a temporary directory here.
        env = {k: (str(root) + v[len(workdir):] if v.startswith(workdir + "/") else v) for k, v in env.items()}
        for value in env.values():
            if value.startswith(str(root) + "/"):
                Path(value).mkdir(parents=True, exist_ok=True)
        return Service(name, spec, binary, env, root)

    for name in one_shot:
        task = service(name)
        task.start()
        RUNNING.append(task)
        try:
            code = task.process.wait(120)
        except subprocess.TimeoutExpired:
            fail(f"{name} did not finish in 120 s")
        if code != 0:
            fail(f"{name} exited {code}")
        RUNNING.remove(task)
        print(f"    {name} exited 0")

    services = [service(name) for name in long_running]
    # The service that publishes a port is the API; it listens on its HTTP_ADDR.
    published = [task for task in services if task.spec.get("ports")]
    if len(published) != 1 or "HTTP_ADDR" not in published[0].env:
        fail("expected one service publishing the API's HTTP_ADDR")
    api_port = int(published[0].env["HTTP_ADDR"].rsplit(":", 1)[1])
    if not port_free(api_port):
        fail(f"port {api_port} is already in use; the API service listens there")
    try:
        for task in services:
            task.start()
            RUNNING.append(task)
        for task in services:
            if task.spec.get("healthcheck", {}).get("disable"):
                continue
            wait_for(f"{task.name}'s health check", task.healthcheck, 60, services)
            print(f"    {task.name} is healthy")
        api = Api(f"http://127.0.0.1:{api_port}")
        env = services[0].env
        admin = login(api, env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"])
        host = register(api, f"smoke-host-{run_id}@example.com", "Smoke Host")
        api.gql("mutation { becomeHost { id } }", token=host)
        top_up(api, host, 500_000)
        product = card_product(api, admin, run_id, 5_000)
        event_lifecycle(api, host, product, 5_000)
        for task in services:
            if not task.alive():
                fail(f"{task.name} exited ({task.process.returncode})")
    finally:
        codes = {task.name: task.stop(40) for task in services}
    if any(code != 0 for code in codes.values()):
        fail(f"not every service stopped cleanly on SIGTERM: {codes}")
    print(f"compose smoke passed: {', '.join(one_shot + long_running)} ran as docker-compose.yml says")


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "hosts":
        print("\n".join(image_services(load_compose())))
    elif len(sys.argv) == 3 and sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
