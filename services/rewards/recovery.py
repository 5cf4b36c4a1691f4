"""How long the worker leaves a multi-step flow to the request driving it, and how far a request
drives one. Redemptions and blind-box draws are rows moved through their states step by step,
paid with a points hold, by the request, a replay of it, or the worker once the request has left
one half-way; red-packet opens are finished by the worker the same way. Each step is a
compare-and-set of the row's status, and the driver that loses one backs off with ``Moved``."""

HOLD_EXPIRES_S = 120  # the hold's life: a flow still waiting for its hold after it gives up
MAX_STEPS = 8  # steps one request drives before answering 409 in_progress (retry)
STUCK_AFTER_S = 20  # what the worker leaves to the request still driving it
RECOVERY_BATCH = 200  # unfinished rows the worker takes up in one run
ENDED_GRACE_S = 5  # late grabs and opens of a just-ended pool or packet land first


class Moved(Exception):
    """Another driver moved the row first: this one backs off (its transaction rolls back)."""


class Forgotten(Exception):
    """The row was deleted under this driver: its request was refused before anything moved, so
    its id is free again. The driver evaluates the request again from the start."""
