"""Project configuration: settings, URLs, WSGI, the database router and backend, command base class."""
