from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"
    verbose_name = "Live rooms"

    def ready(self):
        import sys

        # A web process writes thousands of frames on its event loop while database work
        # runs in a thread; with the default 5 ms GIL switch interval each query of a pin
        # can wait that long for the loop to let go. 1 ms keeps the pin path short.
        if sys.getswitchinterval() > 0.001:
            sys.setswitchinterval(0.001)
