"""The rules, in transactions. Services take a Database and an Actor, and know nothing of HTTP."""
