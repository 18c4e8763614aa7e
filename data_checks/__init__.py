"""Great Expectations suites and Evidently drift reports as pure functions (no dagster import).

Both libraries phone home unless told not to; the switches must be in the environment before either
is imported, and importing this package is the one place every caller goes through first.
"""

import os

os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
