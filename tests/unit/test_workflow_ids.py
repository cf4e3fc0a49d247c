"""Refund workflow ids never collide (issue 12, 2.9): across callers using the same key, with the
names the service reserves for its own refunds, or between kinds of refund."""

from __future__ import annotations

from domain import names


def test_two_callers_with_one_key_get_two_refunds() -> None:
    assert names.own_refund_workflow_id("pay_1", "merchant-a", "k1") != (
        names.own_refund_workflow_id("pay_1", "merchant-b", "k1")
    )
    # the separator keeps ("ab", "c") and ("a", "bc") apart
    assert names.own_refund_workflow_id("pay_1", "ab", "c") != (
        names.own_refund_workflow_id("pay_1", "a", "bc")
    )


def test_a_callers_key_cannot_name_a_refund_the_service_reserves() -> None:
    reserved = {
        names.compensation_refund_workflow_id("pay_1"),
        names.observed_refund_workflow_id("pay_1", "re_1"),
        names.late_payment_refund_workflow_id("pay_1", "ch_1"),
    }
    for key in ("compensation", "observed-re_1", "late-ch_1", "-compensation", "../compensation"):
        assert names.own_refund_workflow_id("pay_1", "merchant", key) not in reserved
    assert len(reserved) == 3


def test_refunds_of_two_payments_never_share_an_id() -> None:
    """Payment ids are `pay_` and hex, without the `-` the kinds of refund are joined by."""
    payment_id = names.checkout_id_for(names.checkout_workflow_id("o-1", 2))
    assert payment_id.startswith("pay_") and payment_id[4:].isalnum()
    assert names.compensation_refund_workflow_id("pay_1") != (
        names.compensation_refund_workflow_id("pay_12")
    )
