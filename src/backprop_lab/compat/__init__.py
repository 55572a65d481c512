"""The few uses of other libraries' internals that no public API replaces, one module per
library, each with why and the versions it was checked against; tests/compat fails when
one of them changes."""
