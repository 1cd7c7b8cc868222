"""The development server (`make run`) logs its request lines without their query strings."""

from __future__ import annotations

import io
import logging

from config.middleware import QueryStringFilter


def test_the_development_server_logs_request_lines_without_their_query_strings():
    logger = logging.getLogger("django.server")
    # The console's handler (pytest adds its own capturing ones beside it).
    [handler] = [h for h in logger.handlers if any(isinstance(f, QueryStringFilter) for f in h.filters)]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        # As django.core.servers.basehttp.WSGIRequestHandler.log_message calls it.
        logger.info('"%s" %s %s', "GET /admin/audit/auditevent/?q=jane.doe%40example.org&o=1 HTTP/1.1", "200", "5120")
        logger.info('"%s" %s %s', "GET /admin/ HTTP/1.1", "302", "0")
    finally:
        handler.setStream(previous)
    logged = stream.getvalue()
    assert "jane.doe" not in logged and "example.org" not in logged
    assert '"GET /admin/audit/auditevent/?… HTTP/1.1" 200 5120' in logged
    assert '"GET /admin/ HTTP/1.1" 302 0' in logged
