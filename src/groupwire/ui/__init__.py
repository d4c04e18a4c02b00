"""The admin web page, served under ``/app`` by the Admin API's application.

Server-rendered HTML (Jinja2) with one small script and one stylesheet bundled in the
package: nothing is fetched from another origin. Sign in with an API key; every change is a
call to the same facade the Admin API uses, made with that key as the actor. See
``docs/admin-ui.md``.

This package's root imports nothing heavy: the store imports :mod:`groupwire.ui.tables`.
The router lives in :mod:`groupwire.ui.router`.
"""
