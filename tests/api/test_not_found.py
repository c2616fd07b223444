"""A mutation on an id that names nothing says so: a GraphQL error NOT_FOUND on the field."""

from __future__ import annotations

import pytest

from tests.support import Api

RETRY = "mutation($id: ID!) { retryDelivery(id: $id) { id status } }"


@pytest.mark.parametrize("delivery_id", ["nope", "01deadbeef0000000000000000000000"])
async def test_retrying_an_unknown_delivery_is_not_found(api: Api, delivery_id: str) -> None:
    body = await api.gql(RETRY, {"id": delivery_id})
    assert body["data"] == {"retryDelivery": None}
    [error] = body["errors"]
    assert error["path"] == ["retryDelivery"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["message"] == "No delivery has this id."
    assert delivery_id not in error["message"]
    # and nothing was audited
    audit = await api.ok('{ auditLog(action: "delivery.retry") { totalCount } }')
    assert audit["auditLog"]["totalCount"] == 0


async def test_retrying_a_known_delivery_answers_it(api: Api) -> None:
    save = """mutation($input: WebhookChannelInput!) { saveWebhookChannel(input: $input) {
      channel { id } errors { code } } }"""
    await api.ok(save, {"input": {"name": "hook", "url": "http://127.0.0.1:9/hook"}})
    await api.ok('mutation { emitEvent(input: {type: "test", title: "t"}) { event { id } } }')
    [delivery] = (await api.ok("{ deliveries { nodes { id status } } }"))["deliveries"]["nodes"]
    # a pending delivery is answered as it is (only a FAILED one is put back in the queue)
    assert await api.ok(RETRY, {"id": delivery["id"]}) == {"retryDelivery": delivery}
