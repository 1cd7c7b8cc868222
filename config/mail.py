"""The development e-mail backend: every message as one .eml file in FLOWS_MAIL_DIR, for `make run` users to open."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


class EmlFileBackend(BaseEmailBackend):
    """Writes each message to `<FLOWS_MAIL_DIR>/<UTC time>-<random>.eml` (readable by the owner only).

    Django's own file backend appends every message of a connection to one `.log` file; one
    standard .eml file per message opens in any mail program.
    """

    def __init__(self, *args, file_path=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.directory = Path(file_path or settings.FLOWS_MAIL_DIR)

    def send_messages(self, email_messages) -> int:
        if not email_messages:
            return 0
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            name = f"{timezone.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.eml"
            fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(message.message().as_bytes())
            sent += 1
        return sent
