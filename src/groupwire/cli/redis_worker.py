"""``python -m groupwire.cli.redis_worker``: a Redis Streams worker process, configured by
``GROUPWIRE_*``, without the relay (the API servers publish; docs/scale-out.md).

``--subscriber NAME`` (repeatable) runs only those subscribers, ``--metrics-port`` serves the
process's Prometheus metrics. ``groupwire worker`` is the same with the relay running too.
"""

from __future__ import annotations

import argparse
import logging

from groupwire.app import Groupwire
from groupwire.events.worker import run_until_signalled


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Groupwire subscribers on Redis Streams")
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--subscriber", action="append", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    gw = Groupwire.open()
    try:
        if args.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(args.metrics_port, addr="127.0.0.1")
        gw.scheduler.start()  # smart groups' time conditions (once per flip across workers)
        run_until_signalled(gw.worker(subscribers=args.subscriber))
    finally:
        gw.close()


if __name__ == "__main__":
    main()
