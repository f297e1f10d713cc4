"""Accounts: users, sign-up, API tokens and how a request authenticates with one, login and
sign-up rate limits; the account pages and API. May call: web, records."""
