"""Partner agencies on the real broker: subscriptions, per-role fan-out, isolation of a
slow partner, pause and resume."""

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from gateway_support import (
    RunningGateway,
    eventually,
    restore_as_another_process,
    running_gateway,
)
from partner_support import (
    ADMIN,
    ADMIN_TOKEN,
    Partner,
    admin,
    declared,
    delete_partners,
    partner,
    pika_read,
    queue_depth,
    subscribe,
    unique_report,
)
from queue_support import rabbitmqctl
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from structlog.testing import capture_logs

from contracts.envelope import Envelope, RecipientRole
from gateway.adapters.auth import token_fingerprint
from gateway.bootstrap import RUNTIME, topology
from gateway.partners import partner_distribution_id
from gateway.queue.delivery_worker import DeliveryWorker
from gateway.queue.partner_router import PartnerTopology, declare_partner_base
from gateway.queue.topology import declare_recipient
from gateway.redaction import redact_case

pytestmark = pytest.mark.integration

PINANG_HIGH = "valid-01-app-basic.json"  # case.created.pinang.high, needs 112
CIPONDOH_HIGH = "valid-02-patbm-cadre-child.json"  # case.created.cipondoh.high, needs 112
OPS_TOKEN = "ops-token-for-partner-tests-0123"
SYNC_S = 0.1  # the subscription sync of the two-process tests
IN_STEP_S = 3.0  # well within the default sync (5 s): the setting is what brings it
KARANG_TENGAH_MEDIUM = "valid-03-hotline-anonymous-no-medis.json"  # no 112, no consent


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with running_gateway(
        tmp_path, admin_token=ADMIN_TOKEN, push_attempts=1, retry_delays_s=[1, 2]
    ) as gateway:
        try:
            yield gateway
        finally:
            await delete_partners(gateway)


async def post(gw: RunningGateway, name: str) -> str:
    status, body = await gw.post_report(unique_report(name))
    assert status == 202, body
    case_id: str = body["case_id"]
    return case_id


async def test_amqp_subscribers_get_exactly_their_topics_redacted_for_their_role(
    gw: RunningGateway,
) -> None:
    police = await subscribe(
        gw,
        agency_id="polres-metro",
        role="police",
        patterns=["case.*.pinang.#", "case.created.cipondoh.critical"],
        delivery={"mode": "amqp"},
    )
    dashboard = await subscribe(
        gw,
        agency_id="dashboard-kota",
        role="dashboard",
        patterns=["case.created.#"],
        delivery={"mode": "amqp"},
    )
    social = await subscribe(
        gw,
        agency_id="dinsos",
        role="social",
        patterns=["case.created.*.medium", "case.created.karang-tengah.#"],
        delivery={"mode": "amqp"},
    )
    pinang = await post(gw, PINANG_HIGH)
    cipondoh = await post(gw, CIPONDOH_HIGH)
    karang_tengah = await post(gw, KARANG_TENGAH_MEDIUM)

    expected = {
        police["delivery"]["queue"]: (RecipientRole.POLICE, {pinang}),
        dashboard["delivery"]["queue"]: (
            RecipientRole.DASHBOARD,
            {pinang, cipondoh, karang_tengah},
        ),
        social["delivery"]["queue"]: (RecipientRole.SOCIAL, {karang_tengah}),
    }
    store = await gw.store()
    try:
        for queue, (role, case_ids) in expected.items():
            taken = await asyncio.to_thread(pika_read, queue, len(case_ids), timeout_s=15)
            envelopes = [Envelope.model_validate_json(body) for _, body in taken]
            assert sorted(e.case_id for e in envelopes) == sorted(case_ids), queue
            for (properties, _), envelope in zip(taken, envelopes, strict=True):
                case = await store.get_case(envelope.case_id)
                assert case is not None
                assert envelope.redaction_profile is role
                assert envelope.recipient_roles == [role]
                assert envelope.content == redact_case(case, role)
                assert (envelope.kind, envelope.schema_, envelope.sequence) == (
                    "report",
                    "kdrt-case/1",
                    1,
                )
                assert envelope.routing_key is not None
                assert envelope.routing_key.startswith("case.created.")
                assert properties.message_id == envelope.distribution_id
                assert properties.delivery_mode == 2
    finally:
        await store.close()


async def test_the_partner_copy_has_a_distribution_id_derived_from_the_event(
    gw: RunningGateway,
) -> None:
    created = await subscribe(
        gw, agency_id="rsud", role="health", patterns=["#"], delivery={"mode": "amqp"}
    )
    case_id = await post(gw, PINANG_HIGH)

    [(_, body)] = await asyncio.to_thread(pika_read, created["delivery"]["queue"], 1, timeout_s=15)

    envelope = Envelope.model_validate_json(body)
    with sqlite3.connect(gw.settings.sqlite_path()) as db:
        events = db.execute(
            "SELECT message_id FROM outbox WHERE case_id = ? AND destination = 'events'",
            (case_id,),
        ).fetchall()
    [(event_id,)] = events
    assert envelope.distribution_id == partner_distribution_id(event_id, created["subscription_id"])


async def test_a_partner_that_is_down_delays_neither_112_nor_another_partner(
    gw: RunningGateway,
) -> None:
    async with partner() as down, partner() as up:
        await down.set_mode(mode="down")
        for agency, receiver in (("puskesmas-down", down), ("rs-up", up)):
            await subscribe(
                gw,
                agency_id=agency,
                role="health",
                patterns=["case.created.#"],
                delivery={"mode": "webhook", "url": receiver.url, "secret": receiver.secret},
            )
        case_ids = {await post(gw, PINANG_HIGH), await post(gw, CIPONDOH_HIGH)}

        async def others_have_all() -> bool:
            to_112 = {m["body"]["case_id"] for m in await gw.sim_messages()}
            to_up = {body["case_id"] for body in await up.accepted()}
            return to_112 == case_ids and to_up == case_ids

        await eventually(others_have_all, 5.0, "112 and the partner that is up have both cases")
        assert await down.accepted() == []
        assert [m for m in await down.messages() if m["signature_valid"]]  # it was tried

        await down.set_mode(mode="ok")

        async def down_caught_up() -> bool:
            return {body["case_id"] for body in await down.accepted()} == case_ids

        await eventually(down_caught_up, 30.0, "the partner that was down has both cases")
        for body in await up.accepted() + await down.accepted():
            assert body["redaction_profile"] == "health"


async def test_pausing_and_resuming_loses_nothing(gw: RunningGateway) -> None:
    async with partner() as receiver:
        created = await subscribe(
            gw,
            agency_id="p2tp2a",
            role="shelter",
            patterns=["case.#"],
            delivery={"mode": "webhook", "url": receiver.url, "secret": receiver.secret},
        )
        one = f"/v1/subscriptions/{created['subscription_id']}"
        paused = await admin(gw, "POST", one + "/pause")
        assert paused["status"] == "paused"
        case_ids = {await post(gw, name) for name in (PINANG_HIGH, CIPONDOH_HIGH)}
        case_ids.add(await post(gw, KARANG_TENGAH_MEDIUM))

        queue = created["delivery"]["queue"]

        async def queued_all() -> bool:
            return await queue_depth(queue) == len(case_ids)

        await eventually(queued_all, 10.0, "the paused subscription's queue holds every event")
        await asyncio.sleep(0.5)
        assert await receiver.messages() == []

        resumed = await admin(gw, "POST", one + "/resume")
        assert resumed["status"] == "active"

        async def delivered_all() -> bool:
            return {body["case_id"] for body in await receiver.accepted()} == case_ids

        await eventually(delivered_all, 15.0, "everything queued while paused is delivered")
        assert await queue_depth(queue) == 0
        assert len(await receiver.accepted()) == len(case_ids)


@pytest.mark.parametrize("mode", ["webhook", "amqp"])
async def test_a_subscriptions_queue_deleted_on_the_broker_is_declared_again(
    gw: RunningGateway, mode: str
) -> None:
    async with partner() as receiver:
        delivery: dict[str, Any] = {"mode": mode}
        if mode == "webhook":
            delivery |= {"url": receiver.url, "secret": receiver.secret}
        created = await subscribe(
            gw, agency_id="polres-metro", role="police", patterns=["case.#"], delivery=delivery
        )
        queue = created["delivery"]["queue"]
        await rabbitmqctl("delete_queue", queue)

        with capture_logs() as logs:
            case_ids = {await post(gw, name) for name in (PINANG_HIGH, CIPONDOH_HIGH)}

            async def arrived() -> bool:
                if mode == "amqp":
                    return await queue_depth(queue) == len(case_ids)
                return {body["case_id"] for body in await receiver.accepted()} == case_ids

            await eventually(arrived, 15.0, "the events after the deletion reach the partner")
    alerts = [e for e in logs if e["event"] == "ops_alert"]
    assert [(a["alert"], a["subscription_id"]) for a in alerts] == [
        ("broker.partner_queue_missing", created["subscription_id"])
    ]


async def test_a_webhook_worker_consumes_again_when_another_process_restored_its_queue(
    gw: RunningGateway,
) -> None:
    async with partner() as receiver:
        created = await subscribe(
            gw,
            agency_id="rsud-kota",
            role="health",
            patterns=["case.#"],
            delivery={"mode": "webhook", "url": receiver.url, "secret": receiver.secret},
        )
        subscription_id = created["subscription_id"]
        await rabbitmqctl("delete_queue", created["delivery"]["queue"])
        with_it = topology(gw.settings).with_recipients(subscription_id)
        await restore_as_another_process(
            gw.settings, lambda channel: declare_recipient(channel, with_it, subscription_id)
        )

        case_id = await post(gw, PINANG_HIGH)

        async def delivered() -> bool:
            return case_id in {body["case_id"] for body in await receiver.accepted()}

        await eventually(delivered, 15.0, "the event reaches the partner")


async def post_and_await_partner(
    gw: RunningGateway, receiver: Partner, within_s: float = 15.0
) -> None:
    case_ids = {await post(gw, name) for name in (PINANG_HIGH, CIPONDOH_HIGH)}

    async def delivered() -> bool:
        return case_ids <= {body["case_id"] for body in await receiver.accepted()}

    await eventually(delivered, within_s, "the events reach the partner")


async def test_the_partner_routers_queue_deleted_on_the_broker_is_declared_again(
    tmp_path: Path,
) -> None:
    async with (
        running_gateway(tmp_path, admin_token=ADMIN_TOKEN, subscription_sync_s=SYNC_S) as gw,
        partner() as receiver,
    ):
        try:
            await subscribe(
                gw,
                agency_id="rsud-kota",
                role="health",
                patterns=["case.created.*.*", "case.sla.#"],
                delivery={"mode": "webhook", "url": receiver.url, "secret": receiver.secret},
            )
            router_queue = PartnerTopology(topology(gw.settings)).router_queue
            with capture_logs() as logs:
                await rabbitmqctl("delete_queue", router_queue)

                async def consumed_again() -> bool:
                    result = await declared(router_queue)
                    return result is not None and result.consumer_count == 1

                await eventually(consumed_again, 10.0, "the router's queue is consumed again")
                await post_and_await_partner(gw, receiver)
        finally:
            await delete_partners(gw)
    alerts = [e["alert"] for e in logs if e["event"] == "ops_alert"]
    assert alerts == ["broker.partner_router_queue_missing"]


# The broker client's own recovery consumes again 5 s after the broker cancelled the
# consumer (its reconnect interval), and may register a consumer that never hands a
# delivery to the router: the gateway restarts the router on the notice, at once.
NOTICE_ACTED_ON_S = 3.0


async def test_the_partner_router_consumes_again_when_another_process_restored_its_queue(
    tmp_path: Path,
) -> None:
    async with (
        # no sync round during the test: only the notice may bring the router back
        running_gateway(tmp_path, admin_token=ADMIN_TOKEN, subscription_sync_s=60) as gw,
        partner() as receiver,
    ):
        try:
            patterns = ["case.#"]
            await subscribe(
                gw,
                agency_id="polres-metro",
                role="police",
                patterns=patterns,
                delivery={"mode": "webhook", "url": receiver.url, "secret": receiver.secret},
            )
            partner_topo = PartnerTopology(topology(gw.settings))
            await rabbitmqctl("delete_queue", partner_topo.router_queue)

            async def declare_router(channel: AbstractChannel) -> None:
                await declare_partner_base(channel, partner_topo)
                router = await channel.get_queue(partner_topo.router_queue)
                for pattern in patterns:
                    await router.bind(partner_topo.base.events_exchange, routing_key=pattern)

            await restore_as_another_process(gw.settings, declare_router)
            await post_and_await_partner(gw, receiver, within_s=NOTICE_ACTED_ON_S)
        finally:
            await delete_partners(gw)


async def test_subscriptions_api(gw: RunningGateway) -> None:
    secret_given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    given = await subscribe(
        gw,
        agency_id="polres",
        role="police",
        patterns=["case.#", "sla.breached.#"],
        delivery={"mode": "webhook", "url": "http://127.0.0.1:9/hook", "secret": secret_given},
    )
    made = await subscribe(
        gw,
        agency_id="polres",
        role="police",
        patterns=["status.#"],
        delivery={"mode": "webhook", "url": "http://127.0.0.1:9/other"},
    )
    assert given["secret"] == secret_given
    assert made["secret"].startswith("whsec_")
    assert made["delivery"]["secret_hint"] == "…" + made["secret"][-4:]
    assert given["delivery"]["queue"] == (
        f"{gw.settings.namespace}.deliver.{given['subscription_id']}"
    )

    response = await gw.client.get("/v1/subscriptions", headers=ADMIN)
    text = await response.text()
    assert response.status == 200
    assert secret_given not in text
    assert made["secret"] not in text
    listed = json.loads(text)["subscriptions"]
    assert [s["subscription_id"] for s in listed] == [
        given["subscription_id"],
        made["subscription_id"],
    ]
    assert all("secret" not in s for s in listed)

    one = f"/v1/subscriptions/{given['subscription_id']}"
    assert (await admin(gw, "GET", one))["patterns"] == ["case.#", "sla.breached.#"]
    await admin(gw, "DELETE", one, expect=204)
    await admin(gw, "GET", one, expect=404)
    await admin(gw, "POST", one + "/pause", expect=404)
    await admin(gw, "DELETE", one, expect=404)


async def test_amqp_subscription_is_one_per_agency_and_cannot_pause(gw: RunningGateway) -> None:
    first = await subscribe(
        gw, agency_id="dinsos", role="social", patterns=["#"], delivery={"mode": "amqp"}
    )
    assert first["delivery"]["queue"] == f"{gw.settings.namespace}.partner.dinsos"
    assert "secret" not in first

    again = await admin(
        gw,
        "POST",
        "/v1/subscriptions",
        {"agency_id": "dinsos", "role": "social", "patterns": ["#"], "delivery": {"mode": "amqp"}},
        expect=409,
    )
    assert "dinsos" in again["detail"]
    await admin(gw, "POST", f"/v1/subscriptions/{first['subscription_id']}/pause", expect=409)


@pytest.mark.parametrize(
    ("body", "pointers"),
    [
        (
            {
                "agency_id": "Polres Kota",
                "role": "police",
                "patterns": ["#"],
                "delivery": {"mode": "amqp"},
            },
            {"/agency_id"},
        ),
        (
            {
                "agency_id": "polres",
                "role": "mayor",
                "patterns": ["case.cre*.#", "case.created.pinang"],
                "delivery": {"mode": "amqp"},
            },
            {"/role", "/patterns/0"},
        ),
        (
            {
                "agency_id": "polres",
                "role": "police",
                "patterns": ["case.created.pinang", "case.*.*.*.*"],
                "delivery": {"mode": "amqp"},
            },
            {"/patterns/0", "/patterns/1"},
        ),
        (
            {
                "agency_id": "polres",
                "role": "police",
                "patterns": [],
                "delivery": {"mode": "webhook", "url": "ftp://x", "secret": "nope"},
            },
            {"/patterns", "/delivery/url", "/delivery/secret"},
        ),
        (
            {"agency_id": "polres", "role": "police", "patterns": ["#"], "delivery": {}},
            {"/delivery"},
        ),
    ],
)
async def test_invalid_subscriptions_are_refused_naming_each_field(
    gw: RunningGateway, body: dict[str, Any], pointers: set[str]
) -> None:
    problem = await admin(gw, "POST", "/v1/subscriptions", body, expect=422)

    assert {e["pointer"] for e in problem["errors"]} == pointers
    assert await admin(gw, "GET", "/v1/subscriptions") == {"subscriptions": []}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/subscriptions"),
        ("POST", "/v1/subscriptions"),
        ("POST", "/v1/subscriptions/sub-x/pause"),
        ("DELETE", "/v1/subscriptions/sub-x"),
    ],
)
async def test_only_the_admin_role_manages_subscriptions(
    tmp_path: Path, method: str, path: str
) -> None:
    async with running_gateway(tmp_path, admin_token=ADMIN_TOKEN, ops_token=OPS_TOKEN) as gw:
        anonymous = await gw.client.request(method, path, json={})
        ops = await gw.client.request(
            method, path, json={}, headers={"Authorization": f"Bearer {OPS_TOKEN}"}
        )
        assert (anonymous.status, ops.status) == (401, 403)


async def test_asyncapi_is_served_and_public(gw: RunningGateway) -> None:
    response = await gw.client.get("/asyncapi.json")
    committed = json.loads(
        (Path(__file__).parents[2] / "contracts" / "asyncapi.json").read_text(encoding="utf-8")
    )

    assert response.status == 200
    assert await response.json() == committed


@dataclass
class TwoProcesses:
    """Two gateway processes sharing a store and the broker, and a partner subscribed."""

    first: RunningGateway
    second: RunningGateway
    receiver: Partner
    subscription: dict[str, Any]

    @property
    def one(self) -> str:
        return f"/v1/subscriptions/{self.subscription['subscription_id']}"

    def workers(self) -> list[DeliveryWorker | None]:
        """Each process's worker delivering the subscription."""
        found = []
        for gateway in (self.first, self.second):
            partners = gateway.client.app[RUNTIME].partners
            assert partners is not None
            found.append(partners.channels.worker(self.subscription["subscription_id"]))
        return found

    def delivering(self) -> list[bool]:
        return [worker is not None for worker in self.workers()]

    async def both_deliver(self) -> bool:
        return self.delivering() == [True, True]

    async def signing_with(self, *secrets: str) -> bool:
        return [None if w is None else w.secrets for w in self.workers()] == [secrets] * 2


@asynccontextmanager
async def two_processes_one_partner(tmp_path: Path, **settings: Any) -> AsyncIterator[TwoProcesses]:
    shared: dict[str, Any] = {
        "admin_token": ADMIN_TOKEN,
        "namespace": f"t{uuid.uuid4().hex[:10]}",
        "database_url": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "subscription_sync_s": SYNC_S,
        **settings,
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_gateway(tmp_path / "a", **shared) as first,
        running_gateway(tmp_path / "b", **shared) as second,
        partner() as receiver,
    ):
        try:
            created = await subscribe(
                first,
                agency_id="lbh-apik",
                role="social",
                patterns=["case.#"],
                delivery={"mode": "webhook", "url": receiver.url, "secret": receiver.secret},
            )
            yield TwoProcesses(first, second, receiver, created)
        finally:
            await delete_partners(first)


async def test_two_gateway_processes_agree_on_pause_and_resume(tmp_path: Path) -> None:
    async with two_processes_one_partner(tmp_path) as two:
        first, second, receiver = two.first, two.second, two.receiver
        created, one = two.subscription, two.one
        await eventually(two.both_deliver, IN_STEP_S, "the second process delivers it too")

        await admin(first, "POST", one + "/pause")

        async def neither_delivers() -> bool:
            return two.delivering() == [False, False]

        await eventually(neither_delivers, IN_STEP_S, "the second process paused it too")
        case_ids = {await post(second, PINANG_HIGH), await post(first, CIPONDOH_HIGH)}

        async def queued() -> bool:
            return await queue_depth(created["delivery"]["queue"]) == len(case_ids)

        await eventually(queued, 10.0, "the paused queue holds both events")
        assert await receiver.messages() == []

        await admin(second, "POST", one + "/resume")

        async def delivered() -> bool:
            return {body["case_id"] for body in await receiver.accepted()} == case_ids

        await eventually(delivered, 15.0, "both events delivered after resuming")


async def test_a_partner_answering_410_stops_its_subscription_in_every_process_until_resumed(
    tmp_path: Path,
) -> None:
    async with two_processes_one_partner(tmp_path, push_attempts=1, ops_token=OPS_TOKEN) as two:
        first, second, receiver = two.first, two.second, two.receiver
        created, one = two.subscription, two.one
        await eventually(two.both_deliver, IN_STEP_S, "the second process delivers it too")
        await receiver.set_mode(mode="fail", status=410)
        with capture_logs() as logs:
            await post(first, PINANG_HIGH)

            async def gone() -> bool:
                found = await admin(second, "GET", one)
                return bool(found["status"] == "gone") and two.delivering() == [False, False]

            await eventually(gone, IN_STEP_S, "the subscription gone in both processes")
        assert any(
            log["event"] == "ops_alert" and log.get("alert") == "delivery.subscription_gone"
            for log in logs
        )
        listed = await admin(first, "GET", "/v1/subscriptions")
        assert [s["status"] for s in listed["subscriptions"]] == ["gone"]
        panel = await second.client.get(
            "/v1/ops/recipients", headers={"Authorization": f"Bearer {OPS_TOKEN}"}
        )
        [shown] = [
            r
            for r in (await panel.json())["recipients"]
            if r["recipient"] == created["subscription_id"]
        ]
        assert (shown["subscription_status"], shown["delivering"]) == ("gone", False)
        assert (await admin(first, "POST", one + "/pause"))["status"] == "gone"

        await receiver.set_mode(mode="ok")
        answered_410 = len(await receiver.messages())
        later = await post(second, CIPONDOH_HIGH)

        async def queued() -> bool:
            return await queue_depth(created["delivery"]["queue"]) == 1

        await eventually(queued, 10.0, "the gone subscription's queue keeps the event")
        await asyncio.sleep(0.5)
        assert len(await receiver.messages()) == answered_410

        resumed = await admin(second, "POST", one + "/resume")
        assert resumed["status"] == "active"

        async def delivered() -> bool:
            return later in {body["case_id"] for body in await receiver.accepted()}

        await eventually(delivered, 15.0, "what queued while gone is delivered on resume")
        store = await first.store()
        try:
            changes = [
                (row.actor_role, json.loads(row.details)["status"])
                for row in await store.audit_rows()
                if row.action == "subscription.status"
            ]
        finally:
            await store.close()
        assert changes == [("system", "gone"), ("admin", "active")]


async def test_a_change_through_one_process_takes_effect_in_the_other_at_once(
    tmp_path: Path,
) -> None:
    """Every change is announced on the control exchange: the other process applies it
    without waiting for its sync, an hour here."""
    async with two_processes_one_partner(
        tmp_path, subscription_sync_s=3600, push_attempts=1
    ) as two:
        first, second, receiver, one = two.first, two.second, two.receiver, two.one

        async def neither_delivers() -> bool:
            return two.delivering() == [False, False]

        await eventually(two.both_deliver, IN_STEP_S, "the other process delivers it too")
        await admin(second, "POST", one + "/pause")
        await eventually(neither_delivers, IN_STEP_S, "paused in both processes")
        await admin(first, "POST", one + "/resume")
        await eventually(two.both_deliver, IN_STEP_S, "resumed in both processes")
        await receiver.set_mode(mode="fail", status=410)
        await post(first, PINANG_HIGH)
        await eventually(neither_delivers, IN_STEP_S, "gone in both processes")
        await admin(second, "POST", one + "/resume")
        await eventually(two.both_deliver, IN_STEP_S, "resumed again in both processes")
        leaked = await admin(first, "POST", one + "/secret", {"previous_valid_s": 0})
        await eventually(
            lambda: two.signing_with(leaked["secret"]),
            IN_STEP_S,
            "the replaced secret dropped in both processes",
        )
        await admin(second, "DELETE", one, expect=204)
        await eventually(neither_delivers, IN_STEP_S, "deleted in both processes")


async def test_the_audit_log_names_the_token_behind_each_subscription_change(
    tmp_path: Path,
) -> None:
    other = "admin-token-of-another-admin-0123"
    async with running_gateway(tmp_path, admin_token=f"{ADMIN_TOKEN} {other}") as gw:
        created = await subscribe(
            gw,
            agency_id="polres",
            role="police",
            patterns=["case.#"],
            delivery={"mode": "webhook", "url": "http://127.0.0.1:9/hook"},
        )
        one = f"/v1/subscriptions/{created['subscription_id']}"
        await admin(gw, "POST", one + "/pause", token=other)
        await admin(gw, "POST", one + "/resume")
        await admin(gw, "POST", one + "/secret", {"previous_valid_s": 0}, token=other)
        await admin(gw, "DELETE", one, expect=204, token=other)
        store = await gw.store()
        try:
            rows = [r for r in await store.audit_rows() if r.action.startswith("subscription.")]
        finally:
            await store.close()
    mine, theirs = token_fingerprint(ADMIN_TOKEN), token_fingerprint(other)
    assert mine != theirs
    assert [(r.action, r.actor_role, r.actor_id) for r in rows] == [
        ("subscription.created", "admin", mine),
        ("subscription.status", "admin", theirs),
        ("subscription.status", "admin", mine),
        ("subscription.secret_rotated", "admin", theirs),
        ("subscription.removed", "admin", theirs),
    ]
    assert [t for t in (ADMIN_TOKEN, other) if t in str(rows)] == []


async def test_a_sync_round_from_a_stale_snapshot_cannot_undo_a_pause(gw: RunningGateway) -> None:
    async with partner() as receiver:
        created = await subscribe(
            gw,
            agency_id="lbh-apik",
            role="social",
            patterns=["case.#"],
            delivery={"mode": "webhook", "url": receiver.url, "secret": receiver.secret},
        )
        partners = gw.client.app[RUNTIME].partners
        assert partners is not None
        sub_id = created["subscription_id"]
        before_pause = await partners.service.list()
        snapshot_read = asyncio.Event()

        async def stale_snapshot() -> list[Any]:
            await snapshot_read.wait()
            return list(before_pause)

        sync_round = asyncio.create_task(partners.channels.reconcile(stale_snapshot))
        await asyncio.sleep(0)
        pausing = asyncio.create_task(admin(gw, "POST", f"/v1/subscriptions/{sub_id}/pause"))
        await asyncio.sleep(0.2)
        snapshot_read.set()
        await asyncio.gather(sync_round, pausing)

        assert partners.channels.worker(sub_id) is None


def signed_by(message: dict[str, Any], secret: str) -> bool:
    """Whether the push carries a Standard Webhooks signature made with ``secret``."""
    try:
        Webhook(secret).verify(message["raw"].encode(), message["headers"])
    except WebhookVerificationError:
        return False
    return True


async def test_a_new_secret_signs_beside_the_old_one_in_every_process_until_the_overlap_ends(
    tmp_path: Path,
) -> None:
    overlap_s = 8  # long enough for the push on a loaded machine
    async with two_processes_one_partner(tmp_path, push_attempts=1) as two:
        first, second, receiver, one = two.first, two.second, two.receiver, two.one
        await eventually(
            lambda: two.signing_with(receiver.secret), IN_STEP_S, "both processes deliver"
        )
        rotated = await admin(first, "POST", one + "/secret", {"previous_valid_s": overlap_s})
        new = rotated["secret"]
        assert new.startswith("whsec_")
        assert new != receiver.secret
        assert rotated["delivery"]["secret_hint"] == "…" + new[-4:]
        assert rotated["delivery"]["previous_secret_until"] is not None
        await eventually(
            lambda: two.signing_with(new, receiver.secret),
            IN_STEP_S,
            "the other process signs with both secrets too",
        )
        listed = await (await first.client.get("/v1/subscriptions", headers=ADMIN)).text()
        assert new not in listed

        case_id = await post(second, PINANG_HIGH)

        async def delivered() -> bool:
            return [body["case_id"] for body in await receiver.accepted()] == [case_id]

        await eventually(delivered, 10.0, "the push signed with both is accepted")
        [during] = await receiver.messages()
        assert signed_by(during, receiver.secret)
        assert signed_by(during, new)

        await eventually(
            lambda: two.signing_with(new), overlap_s + IN_STEP_S, "the overlap ends everywhere"
        )
        assert (await admin(second, "GET", one))["delivery"].get("previous_secret_until") is None
        later = await post(first, CIPONDOH_HIGH)

        async def pushed_again() -> bool:
            return any(m["body"]["case_id"] == later for m in await receiver.messages())

        await eventually(pushed_again, 10.0, "the next event is pushed")
        [after] = [m for m in await receiver.messages() if m["body"]["case_id"] == later]
        assert signed_by(after, new)
        assert not signed_by(after, receiver.secret)


async def test_a_new_secret_is_refused_clearly(gw: RunningGateway) -> None:
    hook = await subscribe(
        gw,
        agency_id="polres",
        role="police",
        patterns=["case.#"],
        delivery={"mode": "webhook", "url": "http://127.0.0.1:9/hook"},
    )
    queue = await subscribe(
        gw, agency_id="dinsos", role="social", patterns=["case.#"], delivery={"mode": "amqp"}
    )
    one = f"/v1/subscriptions/{hook['subscription_id']}/secret"

    same = await admin(gw, "POST", one, {"secret": hook["secret"]}, expect=409)
    assert hook["secret"] not in json.dumps(same)
    await admin(gw, "POST", f"/v1/subscriptions/{queue['subscription_id']}/secret", {}, expect=409)
    await admin(gw, "POST", "/v1/subscriptions/sub-none/secret", {}, expect=404)
    for body, pointer in (
        ({"secret": "not-a-whsec"}, "/secret"),
        ({"previous_valid_s": 7 * 24 * 3600 + 1}, "/previous_valid_s"),
        ({"previous_valid_s": -1}, "/previous_valid_s"),
        ({"secrets": []}, "/secrets"),
    ):
        refused = await admin(gw, "POST", one, body, expect=422)
        assert [e["pointer"] for e in refused["errors"]] == [pointer], refused
    given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    rotated = await admin(gw, "POST", one, {"secret": given, "previous_valid_s": 0})
    assert rotated["secret"] == given
    assert "previous_secret_until" not in rotated["delivery"]
    response = await gw.client.post(one, json={}, headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert response.status in (401, 403)
