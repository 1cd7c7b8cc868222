"""The development server (`make run`) logs its request lines without their query strings."""

from __future__ import annotations

import logging

from config.middleware import QueryStringFilter


def test_the_development_server_logs_request_lines_without_their_query_strings():
    logger = logging.getLogger("django.server")
    # The console's handler (pytest adds its own capturing ones beside it). Its filters and formatter are applied
    # here directly: its stream may be one an earlier test's capture has closed.
    [handler] = [h for h in logger.handlers if any(isinstance(f, QueryStringFilter) for f in h.filters)]

    def logged(request_line: str, status: str, size: str) -> str:
        # As django.core.servers.basehttp.WSGIRequestHandler.log_message logs a request.
        arguments = (request_line, status, size)
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, '"%s" %s %s', arguments, None)
        assert handler.filter(record)
        return handler.format(record)

    line = logged("GET /admin/audit/auditevent/?q=jane.doe%40example.org&o=1 HTTP/1.1", "200", "5120")
    assert "jane.doe" not in line and "example.org" not in line
    assert line.endswith('"GET /admin/audit/auditevent/?… HTTP/1.1" 200 5120')
    assert logged("GET /admin/ HTTP/1.1", "302", "0").endswith('"GET /admin/ HTTP/1.1" 302 0')
