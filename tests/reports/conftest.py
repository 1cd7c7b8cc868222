"""Reports fixtures: the invitation world (a client with an application and a signing key) and scoped staff users."""

from tests.api.conftest import make_key  # noqa: F401 - fixture shared with the API tests
from tests.invitations.conftest import issue, world  # noqa: F401 - fixtures shared with the invitation tests
from tests.staff.conftest import staff_user  # noqa: F401 - fixture shared with the staff tests
