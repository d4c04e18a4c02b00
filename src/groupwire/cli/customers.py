"""``groupwire customers ...``: list, create and delete customers."""

from __future__ import annotations

from typing import Annotated

import typer

from groupwire.cli.common import (
    DbOption,
    JsonOption,
    cli_context,
    database_url,
    domain_errors,
    escape,
    find_group,
    open_groupwire,
    out,
    parse_metadata,
    print_json_lines,
)
from groupwire.domain.models import Customer

app = typer.Typer(help="Customers.", no_args_is_help=True)
NO_EMAIL = "—"
"""How a customer without email (Medusa allows them) shows in a table or a message."""


def email_label(customer: Customer) -> str:
    return customer.email or NO_EMAIL


def customer_json(customer: Customer) -> dict[str, object]:
    return {
        "id": customer.id,
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "company_name": customer.company_name,
        "phone": customer.phone,
        "metadata": customer.metadata,
        "created_by": customer.created_by,
        "created_at": customer.created_at.isoformat() if customer.created_at else None,
    }


@app.command("list")
def list_customers(
    ctx: typer.Context,
    q: Annotated[
        str | None, typer.Option("--q", help="Search in email, names, company, phone.")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Only members of this group (id or name).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List customers (oldest first)."""
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        group_ids = [find_group(gw, group).id] if group else None
        page = gw.customers.list(q=q, group_ids=group_ids, limit=limit, offset=offset)
    if as_json:
        print_json_lines([customer_json(c) for c in page.items])
        return
    from rich.table import Table

    table = Table(title=f"Customers ({len(page.items)} of {page.count})", title_justify="left")
    table.add_column("id", overflow="fold", style="dim")
    table.add_column("email", overflow="fold")
    table.add_column("name")
    table.add_column("company")
    for c in page.items:
        name = " ".join(p for p in (c.first_name, c.last_name) if p)
        table.add_row(c.id, email_label(c), name, c.company_name or "")
    out().print(table)


@app.command("create")
def create_customer(
    ctx: typer.Context,
    email: Annotated[
        str | None,
        typer.Argument(help="Optional; unique among live customers without an account."),
    ] = None,
    first_name: Annotated[str | None, typer.Option("--first-name")] = None,
    last_name: Annotated[str | None, typer.Option("--last-name")] = None,
    company_name: Annotated[str | None, typer.Option("--company")] = None,
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    metadata: Annotated[str | None, typer.Option(help="A JSON object.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Create a customer and print its id."""
    values = parse_metadata(metadata)
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        customer = gw.customers.create(
            email,
            first_name=first_name,
            last_name=last_name,
            company_name=company_name,
            phone=phone,
            metadata=values,
            context=cli_context(),
        )
    if as_json:
        print_json_lines([customer_json(customer)])
    else:
        label = escape(email_label(customer))
        out().print(f"Created customer {label} {customer.id}", soft_wrap=True)


@app.command("delete")
def delete_customer(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="The customer's id.")],
    db: DbOption = None,
) -> None:
    """Delete a customer; it leaves all its groups (reason ``customer_deleted``)."""
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        groups = gw.customers.groups(customer_id)
        customer = gw.customers.delete(customer_id, context=cli_context())
    label = escape(email_label(customer))
    out().print(
        f"Deleted customer {label} {customer.id} (left {len(groups)} groups)",
        soft_wrap=True,
    )
