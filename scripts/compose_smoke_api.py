"""The API half of the compose smoke test (compose_smoke.py): through a
running API and worker, a sandbox top-up is credited and an event goes
SCHEDULED -> LIVE -> ENDED. The GraphQL documents are the integration
tests' (tests/support). Every user, merchant and event is new on each run.
"""

import json
import time
import urllib.error
import urllib.request
import uuid

PASSWORD = "smoke-test-password"


class Failure(Exception):
    """A step of the smoke test failed."""


def wait_for(what, check, timeout, guard):
    """Polls `check` until it holds; fails after `timeout` s, or as soon as
    `guard` (which raises Failure when a service has died) does."""
    deadline = time.monotonic() + timeout
    while not check():
        try:
            guard()
        except Failure as failure:
            raise Failure(f"{failure} while waiting for {what}") from None
        if time.monotonic() > deadline:
            raise Failure(f"timed out waiting for {what}")
        time.sleep(0.2)


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
        except OSError as error:  # refused, reset, timed out
            raise Failure(f"POST {url} failed: {error}") from error

    def gql(self, query, variables=None, token=None):
        """`data` of the operation; fails the test on any error."""
        status, body = self.post(f"{self.base}/graphql", {"query": query, "variables": variables or {}}, token)
        if status != 200 or not isinstance(body, dict) or body.get("errors"):
            raise Failure(f"GraphQL {query.split('(')[0]} answered {status}: {body}")
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
        raise Failure(f"the sandbox checkout answered {status}: {body}")
    credited = balance(api, token)
    if credited != str(amount):
        raise Failure(f"the wallet shows {credited} after a top-up of {amount}")
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
    """An RFC 3339 UTC time that many seconds from now."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


def event_lifecycle(api, host, product, face_value, guard):
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

    wait_for("the event to go LIVE", lambda: reaches("LIVE"), 30, guard)
    wait_for("the event to end", lambda: reaches("ENDED"), 30, guard)
    if seen != ["SCHEDULED", "LIVE", "ENDED"]:
        raise Failure(f"the event went {' -> '.join(seen)}")


def exercise(api, env, run_id, guard):
    """A top-up credited and an event run by the worker's clock, through the API."""
    admin = login(api, env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"])
    host = register(api, f"smoke-host-{run_id}@example.com", "Smoke Host")
    api.gql("mutation { becomeHost { id } }", token=host)
    top_up(api, host, 500_000)
    product = card_product(api, admin, run_id, 5_000)
    event_lifecycle(api, host, product, 5_000, guard)
