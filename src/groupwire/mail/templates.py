"""Email templates: Jinja2 in a sandbox, checked when saved, rendered when sent.

Templates see two variables, ``customer`` and ``group`` (:data:`CUSTOMER_FIELDS`,
:data:`GROUP_FIELDS`). The environment is a :class:`SandboxedEnvironment` (a template cannot
reach Python internals) with :class:`StrictUndefined`: a misspelt variable or field is an error,
reported when the template is saved (:func:`check_template`) rather than as a broken mail.
``metadata`` is free-form, so any key of it is accepted (a missing one renders empty).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from groupwire.domain.errors import InvalidData
from groupwire.domain.models import Customer, CustomerGroup

CUSTOMER_FIELDS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "company_name",
    "phone",
    "has_account",
    "metadata",
    "created_at",
)
GROUP_FIELDS = ("id", "name", "description", "metadata", "created_at")
VARIABLES: dict[str, tuple[str, ...]] = {"customer": CUSTOMER_FIELDS, "group": GROUP_FIELDS}
MAX_TEMPLATE = 100_000


class Metadata(dict[str, Any]):
    """A metadata object: a key that is not there renders as an empty string."""

    def __missing__(self, key: str) -> str:
        return ""


def _finalize(value: Any) -> Any:
    return "" if value is None else value


class TemplateSandbox(SandboxedEnvironment):
    """The sandbox, also refusing arithmetic that builds huge values (``"x" * 10**9``)."""

    intercepted_binops = frozenset({"*", "**"})
    MAX_REPEAT = 10_000

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponent too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and times * max(len(seq), 1) > self.MAX_REPEAT:
                    raise SecurityError("repetition too large")
        return super().call_binop(context, operator, left, right)


def environment(*, html: bool = False) -> Environment:
    """The sandboxed, strict environment every template is checked and rendered with."""
    return TemplateSandbox(
        undefined=StrictUndefined,
        autoescape=html,
        finalize=_finalize,
        keep_trailing_newline=True,
    )


def customer_variables(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "company_name": customer.company_name,
        "phone": customer.phone,
        "has_account": customer.has_account,
        "metadata": Metadata(customer.metadata or {}),
        "created_at": customer.created_at.isoformat() if customer.created_at else None,
    }


def group_variables(group: CustomerGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "metadata": Metadata(group.metadata or {}),
        "created_at": group.created_at.isoformat() if group.created_at else None,
    }


SAMPLE: dict[str, Any] = {
    "customer": {
        "id": "cus_01SAMPLE",
        "email": "jane@example.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "company_name": "Example Ltd",
        "phone": "+1 555 0100",
        "has_account": True,
        "metadata": Metadata(),
        "created_at": "2026-01-01T00:00:00+00:00",
    },
    "group": {
        "id": "cusgroup_01SAMPLE",
        "name": "VIP",
        "description": "Sample group",
        "metadata": Metadata(),
        "created_at": "2026-01-01T00:00:00+00:00",
    },
}


@dataclass(frozen=True)
class MailTemplate:
    """A subject, a plain-text body and an optional HTML body, all Jinja2 templates."""

    subject: str
    body: str
    html_body: str | None = None

    def render(self, variables: Mapping[str, Any]) -> RenderedMail:
        subject = _render("subject", self.subject, variables, html=False)
        return RenderedMail(
            subject=" ".join(subject.split()),  # one line: no header injection, no folding
            body=_render("body", self.body, variables, html=False),
            html_body=(
                None
                if self.html_body is None
                else _render("html_body", self.html_body, variables, html=True)
            ),
        )


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    body: str
    html_body: str | None


def check_template(name: str, source: Any, *, html: bool = False, required: bool = True) -> str:
    """Return ``source`` if it is a usable template, else raise ``InvalidData`` saying why:
    bad syntax (with the line), an unknown variable or field, or an error rendering a sample."""
    if not isinstance(source, str):
        raise InvalidData(f"{name} must be a string")
    if required and not source.strip():
        raise InvalidData(f"{name} must not be empty")
    if len(source) > MAX_TEMPLATE:
        raise InvalidData(f"{name} is longer than {MAX_TEMPLATE} characters")
    env = environment(html=html)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as error:
        raise InvalidData(
            f"{name}: template syntax error on line {error.lineno}: {error.message}"
        ) from None
    unknown = sorted(meta.find_undeclared_variables(tree) - set(VARIABLES))
    if unknown:
        raise InvalidData(
            f"{name}: unknown variable {', '.join(repr(v) for v in unknown)}; "
            f"use {' or '.join(VARIABLES)}"
        )
    for node in tree.find_all(nodes.Getattr):
        target = node.node
        if isinstance(target, nodes.Name) and target.name in VARIABLES:
            fields = VARIABLES[target.name]
            if node.attr not in fields:
                raise InvalidData(
                    f"{name}: {target.name} has no field {node.attr!r} (line {node.lineno}); "
                    f"fields: {', '.join(fields)}"
                )
    _render(name, source, SAMPLE, html=html)
    return source


def _render(name: str, source: str, variables: Mapping[str, Any], *, html: bool) -> str:
    try:
        return environment(html=html).from_string(source).render(**variables)
    except SecurityError as error:
        raise InvalidData(f"{name}: not allowed in a template: {error}") from None
    except TemplateError as error:
        raise InvalidData(f"{name}: {error.message or error}") from None
    except Exception as error:  # e.g. a division by zero in an expression
        raise InvalidData(f"{name}: {type(error).__name__}: {error}") from None
