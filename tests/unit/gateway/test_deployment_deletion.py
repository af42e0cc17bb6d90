"""When a deployment may be deleted: nothing made through it still runs and none of its instances is online."""

from __future__ import annotations

from services.gateway.routes.deployments import deletion_refusal


def test_a_deployment_with_nothing_running_and_no_instance_may_be_deleted() -> None:
    assert deletion_refusal("acme/app", 0, []) is None


def test_running_predictions_refuse_the_delete_and_say_so() -> None:
    refusal = deletion_refusal("acme/app", 2, [{"id": "i-1", "state": "ready"}])
    assert refusal is not None
    assert "acme/app" in refusal and "2 prediction(s) still running" in refusal


def test_online_instances_refuse_the_delete_and_say_how_to_get_there() -> None:
    refusal = deletion_refusal("acme/app", 0, [{"id": "i-1", "state": "ready"}, {"id": "i-2", "state": "booting"}])
    assert refusal is not None
    assert "acme/app has 2 instance(s) online (booting, ready)" in refusal
    assert "min_instances to 0" in refusal and "scale to zero" in refusal
