"""Welcome emails: configured per group, sent over real SMTP by a subscriber, once per
membership."""

from __future__ import annotations

from groupwire import Groupwire
from groupwire.domain.changes import Context
from groupwire.mail.welcome import SUBSCRIBER
from tests.usecases.conftest import SENDER
from tests.usecases.mailbox import Mailbox

SUBJECT = "Welcome to {{ group.name }}, {{ customer.first_name or 'friend' }}!"
BODY = (
    "Hello {{ customer.first_name }} {{ customer.last_name }},\n"
    "you are now part of {{ group.name }}{% if customer.metadata.tier %}"
    " (tier {{ customer.metadata.tier }}){% endif %}.\n"
)


def joined_event(gw: Groupwire, group_id: str, customer_id: str):  # type: ignore[no-untyped-def]
    events = gw.events.list(type="customer_group.customer_added", subject=group_id, limit=None)
    return next(e for e in events if e.data["customer_id"] == customer_id)


def test_given_a_group_with_a_welcome_email_when_a_customer_joins_then_the_rendered_mail_arrives(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    vip = gw.groups.create("VIP")
    gw.mail.set(vip.id, subject=SUBJECT, body=BODY, html_body="<p>Hi {{ customer.first_name }}</p>")
    jane = gw.customers.create(
        "jane@example.com", first_name="Jane", last_name="Doe", metadata={"tier": "gold"}
    )

    gw.groups.add_customers(vip.id, [jane.id])
    assert gw.drain(30)

    assert len(mailbox.received) == 1
    mail = mailbox.received[0]
    assert mail.rcpt_tos == ["jane@example.com"]
    assert mail.mail_from == "hello@shop.example"
    assert mail.message["From"] == SENDER
    assert mail.message["To"] == "jane@example.com"
    assert mail.subject == "Welcome to VIP, Jane!"
    assert mail.text == "Hello Jane Doe,\nyou are now part of VIP (tier gold).\n"
    assert mail.html is not None and "<p>Hi Jane</p>" in mail.html
    event = joined_event(gw, vip.id, jane.id)
    assert event.id in mail.message["Message-ID"]
    assert gw.mail.sent(event.id)


def test_html_body_escapes_customer_data(gw: Groupwire, mailbox: Mailbox) -> None:
    group = gw.groups.create("Escaped")
    gw.mail.set(group.id, subject="Hi", body="Hi", html_body="<b>{{ customer.first_name }}</b>")
    mallory = gw.customers.create("m@example.com", first_name="<script>x</script>")
    gw.groups.add_customers(group.id, [mallory.id])
    assert gw.drain(30)
    html = mailbox.received[0].html
    assert html is not None
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_redelivery_of_the_same_event_sends_no_second_mail(gw: Groupwire, mailbox: Mailbox) -> None:
    group = gw.groups.create("Members")
    gw.mail.set(group.id, subject=SUBJECT, body=BODY)
    jane = gw.customers.create("jane@example.com", first_name="Jane")
    gw.groups.add_customers(group.id, [jane.id])
    event = joined_event(gw, group.id, jane.id)
    welcome = gw.subscribers.get(SUBSCRIBER)

    # the mail goes out, then the process "crashes" before the relay saves its checkpoint
    welcome.call(event)
    assert len(mailbox.received) == 1
    # after the restart the relay delivers the same event again, and again by hand
    assert gw.drain(30)
    welcome.call(event)

    assert len(mailbox.received) == 1


def test_a_rejoin_is_a_new_membership_and_is_welcomed_again(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    group = gw.groups.create("Members")
    gw.mail.set(group.id, subject=SUBJECT, body=BODY)
    jane = gw.customers.create("jane@example.com", first_name="Jane")
    gw.groups.add_customers(group.id, [jane.id])
    gw.groups.add_customers(group.id, [jane.id])  # already a member: no event, no mail
    gw.groups.remove_customers(group.id, [jane.id])
    gw.groups.add_customers(group.id, [jane.id])
    assert gw.drain(30)
    assert [m.rcpt_tos for m in mailbox.received] == [["jane@example.com"]] * 2


def test_a_transient_smtp_failure_is_retried_and_then_succeeds(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    group = gw.groups.create("Members")
    gw.mail.set(group.id, subject=SUBJECT, body=BODY)
    jane = gw.customers.create("jane@example.com", first_name="Jane")
    mailbox.refuse(2, "451 4.3.0 Mailbox busy, try again")

    gw.groups.add_customers(group.id, [jane.id])
    assert gw.drain(30)

    assert mailbox.refused == 2
    assert len(mailbox.received) == 1
    assert mailbox.received[0].subject == "Welcome to Members, Jane!"
    assert gw.dead_letters.list() == []


def test_a_mail_refused_every_time_is_dead_lettered_and_sent_by_a_replay(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    group = gw.groups.create("Members")
    gw.mail.set(group.id, subject=SUBJECT, body=BODY)
    jane = gw.customers.create("jane@example.com", first_name="Jane")
    attempts = gw.settings.delivery_max_attempts
    mailbox.refuse(attempts, "451 4.3.0 Try again later")

    gw.groups.add_customers(group.id, [jane.id])
    assert gw.drain(30)

    assert mailbox.refused == attempts and mailbox.received == []
    letters = gw.dead_letters.list(subscriber=SUBSCRIBER)
    assert len(letters) == 1 and "451" in letters[0].error
    assert not gw.mail.sent(letters[0].event_id)

    assert gw.dead_letters.replay(subscriber=SUBSCRIBER) == (1, 0)
    assert len(mailbox.received) == 1
    assert gw.mail.sent(letters[0].event_id)


def test_groups_without_an_enabled_template_send_nothing(gw: Groupwire, mailbox: Mailbox) -> None:
    plain = gw.groups.create("No template")
    paused = gw.groups.create("Paused")
    welcoming = gw.groups.create("Welcoming")
    gw.mail.set(paused.id, subject=SUBJECT, body=BODY, enabled=False)
    gw.mail.set(welcoming.id, subject="Hello {{ customer.email }}", body=BODY)
    jane = gw.customers.create("jane@example.com", first_name="Jane")

    gw.groups.add_customers(plain.id, [jane.id])
    gw.groups.add_customers(paused.id, [jane.id])
    assert gw.drain(30)
    assert mailbox.received == []

    gw.groups.add_customers(welcoming.id, [jane.id])  # a control: mail does work
    assert gw.drain(30)
    assert [m.subject for m in mailbox.received] == ["Hello jane@example.com"]


def test_members_who_joined_before_the_template_existed_get_no_mail(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    group = gw.groups.create("Members")
    early = gw.customers.create("early@example.com")
    late = gw.customers.create("late@example.com")
    gw.groups.add_customers(group.id, [early.id])  # not yet delivered to the mailer

    gw.mail.set(group.id, subject="Hi {{ customer.email }}", body=BODY)
    gw.groups.add_customers(group.id, [late.id])
    assert gw.drain(30)

    assert [m.rcpt_tos for m in mailbox.received] == [["late@example.com"]]


def test_a_bulk_add_mails_every_new_member_once(gw: Groupwire, mailbox: Mailbox) -> None:
    group = gw.groups.create("Bulk")
    gw.mail.set(group.id, subject="Hi {{ customer.email }}", body=BODY)
    customers = [gw.customers.create(f"c{i}@example.com") for i in range(12)]
    gw.groups.add_customers(group.id, [c.id for c in customers], context=Context(actor="t"))
    assert gw.drain(60)
    assert sorted(m.rcpt_tos[0] for m in mailbox.received) == sorted(c.email for c in customers)
