"""``groupwire mail welcome ...``: a group's welcome email; ``groupwire mail rules ...``:
stakeholder notification rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from groupwire.cli.common import (
    DbOption,
    JsonOption,
    database_url,
    domain_errors,
    escape,
    fail,
    find_group,
    open_groupwire,
    out,
    print_json_lines,
)

app = typer.Typer(help="Welcome emails and stakeholder notifications.", no_args_is_help=True)
welcome = typer.Typer(help="A customer group's welcome email.", no_args_is_help=True)
rules = typer.Typer(help="Notification rules: who hears of joins and leaves.", no_args_is_help=True)
app.add_typer(welcome, name="welcome")
app.add_typer(rules, name="rules")


def _read(path: Path | None, text: str | None, name: str) -> str | None:
    if path is not None and text is not None:
        raise typer.BadParameter(f"give --{name} or --{name}-file, not both")
    if path is None:
        return text
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}")


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items()}


@welcome.command("set")
def set_welcome(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(help="Group id or name.")],
    subject: Annotated[str, typer.Option(help="Jinja2, e.g. 'Welcome {{ customer.first_name }}'")],
    body: Annotated[str | None, typer.Option(help="Plain-text body (Jinja2).")] = None,
    body_file: Annotated[Path | None, typer.Option(help="Read the body from a file.")] = None,
    html_file: Annotated[Path | None, typer.Option(help="An HTML alternative (Jinja2).")] = None,
    sender: Annotated[str | None, typer.Option(help="From (default: mail_sender).")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Save it switched off.")] = False,
    db: DbOption = None,
) -> None:
    """Set (or replace) the welcome email new members of a group receive."""
    from groupwire.mail import mail_of

    text = _read(body_file, body, "body")
    if text is None:
        raise typer.BadParameter("give --body or --body-file")
    html = _read(html_file, None, "html")
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        group_id = find_group(gw, group).id
        mail_of(gw).set(
            group_id,
            subject=subject,
            body=text,
            html_body=html,
            sender=sender,
            enabled=not disabled,
        )
    out().print(f"Welcome email set for {group_id}")


@welcome.command("show")
def show_welcome(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(help="Group id or name.")],
    customer: Annotated[
        str | None, typer.Option(help="Render it for this customer id (else: the template).")
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Show a group's welcome email, or preview it rendered for a customer."""
    from groupwire.mail import mail_of

    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        group_id = find_group(gw, group).id
        if customer is not None:
            mail = mail_of(gw).preview(group_id, customer)
            data: dict[str, Any] = {"subject": mail.subject, "body": mail.body}
        else:
            data = _plain(mail_of(gw).get(group_id).as_dict())
    if as_json:
        print_json_lines([data])
        return
    out().print(f"[bold]Subject:[/] {escape(data['subject'])}\n", soft_wrap=True)
    out().print(escape(data["body"]), soft_wrap=True)


@welcome.command("delete")
def delete_welcome(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(help="Group id or name.")],
    db: DbOption = None,
) -> None:
    """Stop welcoming new members of a group."""
    from groupwire.mail import mail_of

    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        group_id = find_group(gw, group).id
        mail_of(gw).delete(group_id)
    out().print(f"Welcome email of {group_id} deleted")


@rules.command("add")
def add_rule(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(help="Group id or name.")],
    email: Annotated[
        list[str] | None, typer.Option("--email", help="A stakeholder to mail (repeatable).")
    ] = None,
    webhook_url: Annotated[str | None, typer.Option(help="A URL to notify (signed).")] = None,
    on_leave: Annotated[
        bool, typer.Option("--on-leave", help="Notify when customers leave, not join.")
    ] = False,
    sender: Annotated[str | None, typer.Option(help="From (default: mail_sender).")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Notify stakeholders when a customer joins (or leaves) a group."""
    from groupwire.notify import notifications_of

    event_type = "customer_group.customer_removed" if on_leave else "customer_group.customer_added"
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        group_id = find_group(gw, group).id
        rule = notifications_of(gw).create(
            group_id,
            emails=email or [],
            webhook_url=webhook_url,
            event_type=event_type,
            sender=sender,
        )
    if as_json:
        print_json_lines([_plain(rule.as_dict())])
        return
    out().print(f"Created notification rule {rule.id}", soft_wrap=True)
    if rule.webhook_secret:
        out().print(f"Webhook signing secret (shown once): {rule.webhook_secret}", soft_wrap=True)


@rules.command("list")
def list_rules(
    ctx: typer.Context,
    group: Annotated[str | None, typer.Option(help="Only this group's rules.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List notification rules."""
    from groupwire.notify import notifications_of

    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        group_id = find_group(gw, group).id if group else None
        page = notifications_of(gw).list(group_id=group_id, limit=1000)
    rows = [_plain(rule.as_dict()) for rule in page.items]
    if as_json:
        print_json_lines(rows)
        return
    for row in rows:
        targets = ", ".join([*row["emails"], *([row["webhook_url"]] if row["webhook_url"] else [])])
        state = "" if row["enabled"] else " (disabled)"
        out().print(
            f"{row['id']}  {row['group_id']}  {row['event_type']}  -> {escape(targets)}{state}",
            soft_wrap=True,
        )


@rules.command("delete")
def delete_rule(
    ctx: typer.Context,
    rule_id: Annotated[str, typer.Argument(help="The rule id (nrule_...).")],
    db: DbOption = None,
) -> None:
    """Delete a notification rule (and its webhook endpoint)."""
    from groupwire.notify import notifications_of

    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        notifications_of(gw).delete(rule_id)
    out().print(f"Deleted notification rule {rule_id}")
