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
SCHEDULED -> LIVE -> ENDED, which only the worker's event clock can do
(compose_smoke_api.py).

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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from compose_smoke_api import Api, Failure, exercise, wait_for

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

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
    """The runtime stage's ENV, WORKDIR and CMD from the Dockerfile (whose
    ENTRYPOINT must be the giftdrop binary)."""
    stage = DOCKERFILE.read_text().split("\nFROM ")[-1]
    lines = re.sub(r"\\\n", " ", stage).splitlines()
    env, workdir, entrypoint, cmd = {}, "/", [], []
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
        elif instruction == "CMD":
            cmd = json.loads(rest)
    if entrypoint != ["giftdrop"]:
        sys.exit(f"Dockerfile: expected ENTRYPOINT [\"giftdrop\"], found {entrypoint}")
    return env, workdir, cmd


# ---------------------------------------------------------------- processes


class Service:
    """One compose service run as a process of the giftdrop binary."""

    def __init__(self, name, spec, command, env, root):
        self.name = name
        self.spec = spec
        self.env = env
        self.log_path = root / f"{name}.log"
        self.command = command
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
        """The command of the service's compose health check, if it has one."""
        check = self.spec.get("healthcheck") or {}
        test = check.get("test")
        if check.get("disable") or not test:
            return None
        if test[0] == "CMD":
            return test[1:]
        if test[0] == "CMD-SHELL":
            return ["sh", "-c", test[1]]
        fail(f"{self.name}: unsupported healthcheck {test}")

    def healthy(self):
        """Runs the health check as compose does (in the service's environment)."""
        env = dict(self.env, PATH=os.environ.get("PATH", "/usr/bin:/bin"))
        return subprocess.run(self.healthcheck(), env=env, capture_output=True).returncode == 0


RUNNING = []


def fail(message):
    """Ends the test, with the end of each running service's log."""
    print(f"FAIL: {message}", file=sys.stderr)
    for service in RUNNING:
        print(service.log_tail(), file=sys.stderr)
    sys.exit(1)


def all_alive():
    """Raises Failure if a running service has exited."""
    for task in RUNNING:
        if not task.alive():
            raise Failure(f"{task.name} exited ({task.process.returncode})")


# ---------------------------------------------------------------- main


def prepare(compose, binary, root):
    """A Service per app service, with the image's ENV under the compose
    environment, and the image's paths (WORKDIR) moved under `root`."""
    image_env, workdir, image_cmd = image()

    def local(value):
        return str(root) + value[len(workdir):] if value.startswith(workdir + "/") else value

    one_shot, long_running = app_services(compose)
    services = {}
    for name in one_shot + long_running:
        spec = compose["services"][name]
        unsupported = {"env_file", "entrypoint", "working_dir"} & spec.keys()
        if unsupported:
            fail(f"{name}: the smoke test does not read {', '.join(sorted(unsupported))} yet")
        env = dict(image_env, **compose_env(spec, os.environ))
        command = spec.get("command", image_cmd)
        if isinstance(command, str):
            command = shlex.split(command)
        env = {k: local(v) for k, v in env.items()}
        services[name] = Service(name, spec, [binary, *command], env, root)
    return services


def run_to_completion(task):
    """A one-shot service (`migrate`): it must exit 0."""
    task.start()
    RUNNING.append(task)
    try:
        code = task.process.wait(120)
    except subprocess.TimeoutExpired:
        fail(f"{task.name} did not finish in 120 s")
    if code != 0:
        fail(f"{task.name} exited {code}")
    RUNNING.remove(task)
    print(f"    {task.name} exited 0")


def api_port(services):
    """The port of the one service that publishes one (the API): its HTTP_ADDR's."""
    published = [task for task in services if task.spec.get("ports")]
    if len(published) != 1 or "HTTP_ADDR" not in published[0].env:
        fail("expected one service publishing the API's HTTP_ADDR")
    port = int(published[0].env["HTTP_ADDR"].rsplit(":", 1)[1])
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            fail(f"port {port} is already in use; the API service listens there")
    return published[0], port


def run(binary):
    compose = load_compose()
    one_shot, long_running = app_services(compose)
    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    root = Path(tempfile.mkdtemp(prefix="giftdrop-compose-smoke-"))
    print(f"compose smoke {run_id}: logs, and the image's paths, under {root}")
    services = prepare(compose, binary, root)
    for name in one_shot:
        run_to_completion(services[name])

    together = [services[name] for name in long_running]
    api, port = api_port(together)
    try:
        for task in together:
            task.start()
            RUNNING.append(task)
        for task in together:
            if task.healthcheck():
                wait_for(f"{task.name}'s health check", task.healthy, 60, all_alive)
                print(f"    {task.name} is healthy")
        exercise(Api(f"http://127.0.0.1:{port}"), api.env, run_id, all_alive)
        all_alive()
    except Failure as failure:
        fail(str(failure))
    finally:
        codes = {task.name: task.stop(40) for task in together}
    if any(code != 0 for code in codes.values()):
        fail(f"not every service stopped cleanly on SIGTERM: {codes}")
    shutil.rmtree(root)
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
