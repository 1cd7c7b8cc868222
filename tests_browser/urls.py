"""The console's URLs plus one view that fails: the suite's own check that it notices a server error."""

from django.urls import path

from config.urls import urlpatterns as console_urlpatterns


def fail(request):
    raise RuntimeError("a deliberate failure (tests_browser/test_harness.py)")


urlpatterns = [path("harness/fail/", fail), *console_urlpatterns]
