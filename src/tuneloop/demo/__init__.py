"""The simulated world of `tuneloop demo`: a client of the platform like any other."""
